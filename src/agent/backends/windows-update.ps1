# patchops agent: Windows Update through the Windows Update Agent API (Microsoft.Update.Session COM).
# -Action Search   -> JSON array of updates not installed (IsInstalled=0 and IsHidden=0)
# -Action Install  -> installs the updates whose KB numbers are given in -KBs (comma-separated); JSON result
# -Action Uninstall-> uninstalls one KB with wusa.exe (falls back to DISM /Remove-Package); JSON result
param(
  [Parameter(Mandatory = $true)][ValidateSet('Search', 'Install', 'Uninstall', 'RebootPending')][string]$Action,
  [string[]]$KBs = @()
)
$ErrorActionPreference = 'Stop'
function Out-Json($o) { $o | ConvertTo-Json -Depth 5 -Compress }

# powershell.exe -File passes every argument as one literal string: "-KBs 5034441,5032339" arrives as the single
# string "5034441,5032339", not as two KBs. Split it here; anything but digits (after an optional "KB") is refused.
$KBs = @($KBs | ForEach-Object { $_ -split ',' } | ForEach-Object { $_.Trim() -replace '^KB', '' } | Where-Object { $_ -ne '' })
$notKb = @($KBs | Where-Object { $_ -notmatch '^[0-9]+$' })
if ($notKb.Count -gt 0) { Out-Json @{ Error = "not KB numbers: $($notKb -join ', ')" }; exit 2 }

$session = New-Object -ComObject Microsoft.Update.Session
$session.ClientApplicationID = 'patchops-agent'

if ($Action -eq 'RebootPending') {
  $sys = New-Object -ComObject Microsoft.Update.SystemInfo
  Out-Json @{ RebootRequired = [bool]$sys.RebootRequired }
  exit 0
}

if ($Action -eq 'Search') {
  $searcher = $session.CreateUpdateSearcher()
  $result = $searcher.Search("IsInstalled=0 and IsHidden=0")
  $list = @()
  foreach ($u in $result.Updates) {
    $list += [pscustomobject]@{
      KB                       = ($u.KBArticleIDs | Select-Object -First 1)
      Title                    = $u.Title
      MsrcSeverity             = [string]$u.MsrcSeverity
      Categories               = @($u.Categories | ForEach-Object { $_.Name })
      RebootRequired           = [bool]($u.InstallationBehavior.RebootBehavior -ne 0)
      CVEIds                   = @($u.CveIDs)
      UpdateID                 = $u.Identity.UpdateID
      RevisionNumber           = $u.Identity.RevisionNumber
      SupersededUpdateIDs      = @($u.SupersededUpdateIDs)
      LastDeploymentChangeTime = $u.LastDeploymentChangeTime.ToString('s')
    }
  }
  Write-Output (ConvertTo-Json -InputObject @($list) -Depth 5 -Compress)
  exit 0
}

if ($Action -eq 'Install') {
  $searcher = $session.CreateUpdateSearcher()
  $result = $searcher.Search("IsInstalled=0 and IsHidden=0")
  $coll = New-Object -ComObject Microsoft.Update.UpdateColl
  foreach ($u in $result.Updates) {
    if ($KBs -contains ($u.KBArticleIDs | Select-Object -First 1)) {
      if (-not $u.EulaAccepted) { $u.AcceptEula() }
      [void]$coll.Add($u)
    }
  }
  $found = @(for ($i = 0; $i -lt $coll.Count; $i++) { $coll.Item($i).KBArticleIDs | Select-Object -First 1 })
  $missing = @($KBs | Where-Object { $found -notcontains $_ })
  if ($missing.Count -gt 0) { Out-Json @{ ResultCode = 0; Error = "not applicable here (installed, hidden or unknown): KB$($missing -join ', KB')"; Updates = @() }; exit 2 }
  $dl = $session.CreateUpdateDownloader(); $dl.Updates = $coll; [void]$dl.Download()
  $inst = $session.CreateUpdateInstaller(); $inst.Updates = $coll
  $r = $inst.Install()
  $per = @()
  for ($i = 0; $i -lt $coll.Count; $i++) {
    $ur = $r.GetUpdateResult($i)
    $per += @{ KB = ($coll.Item($i).KBArticleIDs | Select-Object -First 1); ResultCode = $ur.ResultCode; HResult = $ur.HResult; RebootRequired = $ur.RebootRequired }
  }
  # ResultCode: 2 succeeded, 3 succeeded with errors, 4 failed, 5 aborted
  Out-Json @{ ResultCode = $r.ResultCode; RebootRequired = $r.RebootRequired; Updates = $per }
  if ($r.ResultCode -eq 2 -or $r.ResultCode -eq 3) { exit 0 } else { exit 1 }
}

if ($Action -eq 'Uninstall') {
  $kb = ($KBs | Select-Object -First 1) -replace '^KB', ''
  $p = Start-Process -FilePath 'wusa.exe' -ArgumentList "/uninstall /kb:$kb /quiet /norestart" -Wait -PassThru
  # 0 ok, 3010 ok + reboot; otherwise try DISM (combined SSU/LCU packages refuse wusa)
  if ($p.ExitCode -ne 0 -and $p.ExitCode -ne 3010) {
    $pkg = (dism.exe /online /get-packages /format:table | Select-String "KB$kb" | Select-Object -First 1)
    if ($pkg) {
      $name = ($pkg.ToString().Split('|')[0]).Trim()
      $d = Start-Process -FilePath 'dism.exe' -ArgumentList "/online /remove-package /packagename:$name /quiet /norestart" -Wait -PassThru
      Out-Json @{ ExitCode = $d.ExitCode; Tool = 'dism'; RebootRequired = ($d.ExitCode -eq 3010) }
      if ($d.ExitCode -eq 0 -or $d.ExitCode -eq 3010) { exit 0 } else { exit 1 }
    }
  }
  Out-Json @{ ExitCode = $p.ExitCode; Tool = 'wusa'; RebootRequired = ($p.ExitCode -eq 3010) }
  if ($p.ExitCode -eq 0 -or $p.ExitCode -eq 3010) { exit 0 } else { exit 1 }
}
