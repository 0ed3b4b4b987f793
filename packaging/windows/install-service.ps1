# Installs the patchops agent to run as a background service on Windows (run in an elevated PowerShell).
#   .\install-service.ps1 -Server https://patchops.example.com -EnrollSecret <secret> -AgentPath 'C:\Program Files\patchops-agent\patchops-agent.exe'
# -AgentPath: the bundled agent from `npm run package:agent` (dist/agent/portable): patchops-agent.exe (built on
# Windows, needs nothing else) or patchops-agent.cjs (run with node.exe: Node.js 20+). Keep windows-update.ps1 beside it.
# Without -AgentPath: `patchops.cmd agent` from an npm install or a copy of the repository (Node.js 20+).
# The service runs as LocalSystem (it installs updates) and keeps its identity in %ProgramData%\patchops-agent.
param(
  [Parameter(Mandatory = $true)][string]$Server,
  [string]$EnrollSecret = '',
  [string]$AgentPath = '',
  [string]$PatchopsPath = (Get-Command patchops.cmd -ErrorAction SilentlyContinue).Source,
  [string]$ServiceName = 'patchops-agent'
)
$ErrorActionPreference = 'Stop'
# What to start, and the words before the agent's own options.
if ($AgentPath -like '*.cjs') {
  $node = (Get-Command node.exe -ErrorAction SilentlyContinue).Source
  if (-not $node) { throw 'node.exe not found on PATH: install Node.js 20, or pass -AgentPath patchops-agent.exe' }
  $program = $node; $prefix = @("`"$AgentPath`"")
} elseif ($AgentPath) {
  $program = $AgentPath; $prefix = @()
} else {
  if (-not $PatchopsPath) { throw 'no -AgentPath given and patchops.cmd not found on PATH: pass -AgentPath (patchops-agent.exe or .cjs) or -PatchopsPath' }
  $program = $PatchopsPath; $prefix = @('agent')
}
$stateDir = Join-Path $env:ProgramData 'patchops-agent'
New-Item -ItemType Directory -Force -Path $stateDir | Out-Null
# Only SYSTEM and Administrators may read the node key.
icacls $stateDir /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'Administrators:(OI)(CI)F' | Out-Null

if ($EnrollSecret) {
  # Enrol once in the foreground so the service starts with an identity and the secret is not kept anywhere.
  $env:PATCHOPS_ENROLL_SECRET = $EnrollSecret
  $p = Start-Process -FilePath $program -ArgumentList ($prefix + @('--server', $Server, '--state-dir', "`"$stateDir`"", '--wait', '1')) -PassThru -NoNewWindow
  Start-Sleep -Seconds 15
  if (-not (Test-Path (Join-Path $stateDir 'state.json'))) { Stop-Process -Id $p.Id -Force; throw 'enrolment did not complete: check the server URL and the secret' }
  Stop-Process -Id $p.Id -Force
  Remove-Item Env:\PATCHOPS_ENROLL_SECRET
}

# Node.js programs do not speak the Service Control Manager protocol, so a plain New-Service entry would be killed
# at start. The agent runs instead as a SYSTEM scheduled task started at boot and restarted when it stops — the
# usual way to run a console program as a background service without a third-party wrapper (NSSM, WinSW).
$action = New-ScheduledTaskAction -Execute $program -Argument (($prefix + @('--server', $Server, '--state-dir', "`"$stateDir`"")) -join ' ')
$trigger = New-ScheduledTaskTrigger -AtStartup
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable
$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
Register-ScheduledTask -TaskName $ServiceName -Action $action -Trigger $trigger -Settings $settings -Principal $principal -Description 'patchops endpoint agent' -Force | Out-Null
Start-ScheduledTask -TaskName $ServiceName
Write-Host "patchops agent installed as the SYSTEM task '$ServiceName' (starts at boot; state in $stateDir)"
Write-Host "Remove it with: Unregister-ScheduledTask -TaskName $ServiceName -Confirm:`$false"
