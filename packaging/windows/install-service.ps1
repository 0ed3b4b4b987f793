# Installs the patchops agent to run as a background service on Windows (run in an elevated PowerShell).
#   .\install-service.ps1 -Server https://patchops.example.com -EnrollSecret <secret>
# Needs Node.js 20+ and the patchops package (npm install -g patchops, or a copy of the repository).
# The service runs as LocalSystem (it installs updates) and keeps its identity in %ProgramData%\patchops-agent.
param(
  [Parameter(Mandatory = $true)][string]$Server,
  [string]$EnrollSecret = '',
  [string]$PatchopsPath = (Get-Command patchops.cmd -ErrorAction SilentlyContinue).Source,
  [string]$ServiceName = 'patchops-agent'
)
$ErrorActionPreference = 'Stop'
if (-not $PatchopsPath) { throw 'patchops.cmd not found on PATH: install it (npm install -g patchops) or pass -PatchopsPath' }
$stateDir = Join-Path $env:ProgramData 'patchops-agent'
New-Item -ItemType Directory -Force -Path $stateDir | Out-Null
# Only SYSTEM and Administrators may read the node key.
icacls $stateDir /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'Administrators:(OI)(CI)F' | Out-Null

if ($EnrollSecret) {
  # Enrol once in the foreground so the service starts with an identity and the secret is not kept anywhere.
  $env:PATCHOPS_ENROLL_SECRET = $EnrollSecret
  $p = Start-Process -FilePath $PatchopsPath -ArgumentList @('agent', '--server', $Server, '--state-dir', "`"$stateDir`"", '--wait', '1') -PassThru -NoNewWindow
  Start-Sleep -Seconds 15
  if (-not (Test-Path (Join-Path $stateDir 'state.json'))) { Stop-Process -Id $p.Id -Force; throw 'enrolment did not complete: check the server URL and the secret' }
  Stop-Process -Id $p.Id -Force
  Remove-Item Env:\PATCHOPS_ENROLL_SECRET
}

# Node.js programs do not speak the Service Control Manager protocol, so a plain New-Service entry would be killed
# at start. The agent runs instead as a SYSTEM scheduled task started at boot and restarted when it stops — the
# usual way to run a console program as a background service without a third-party wrapper (NSSM, WinSW).
$action = New-ScheduledTaskAction -Execute $PatchopsPath -Argument "agent --server $Server --state-dir `"$stateDir`""
$trigger = New-ScheduledTaskTrigger -AtStartup
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable
$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
Register-ScheduledTask -TaskName $ServiceName -Action $action -Trigger $trigger -Settings $settings -Principal $principal -Description 'patchops endpoint agent' -Force | Out-Null
Start-ScheduledTask -TaskName $ServiceName
Write-Host "patchops agent installed as the SYSTEM task '$ServiceName' (starts at boot; state in $stateDir)"
Write-Host "Remove it with: Unregister-ScheduledTask -TaskName $ServiceName -Confirm:`$false"
