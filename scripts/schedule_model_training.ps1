# Scheduled retraining for Windows Task Scheduler:
#   powershell.exe -File "C:\path\to\repo\scripts\schedule_model_training.ps1"
# Runs `python scripts/train_models.py --force --days-back 180` from the repository, appends its output with
# UTC timestamps to training.log (TRAINING_LOG overrides the path), rotates the log above 5 MB keeping 5 old
# files, logs the exit status, and exits with train_models.py's exit code ($LASTEXITCODE).
# Extra arguments are passed on to train_models.py (e.g. --verbose).

$ErrorActionPreference = "Continue"

$RepoDir = Split-Path -Parent $PSScriptRoot
$Log = if ($env:TRAINING_LOG) { $env:TRAINING_LOG } else { Join-Path $RepoDir "training.log" }
$MaxBytes = if ($env:TRAINING_LOG_MAX_BYTES) { [int64]$env:TRAINING_LOG_MAX_BYTES } else { 5MB }
$Keep = 5

function Write-Stamped([string]$Line) {
    $now = (Get-Date).ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ")
    Add-Content -Path $Log -Value "$now $Line" -Encoding utf8
}

function Invoke-Rotate {
    if (-not (Test-Path -LiteralPath $Log)) { return }
    if ((Get-Item -LiteralPath $Log).Length -le $MaxBytes) { return }
    Remove-Item -LiteralPath "$Log.$Keep" -ErrorAction SilentlyContinue
    for ($i = $Keep - 1; $i -ge 1; $i--) {
        if (Test-Path -LiteralPath "$Log.$i") { Move-Item -LiteralPath "$Log.$i" -Destination "$Log.$($i + 1)" -Force }
    }
    Move-Item -LiteralPath $Log -Destination "$Log.1" -Force
}

$LogDir = Split-Path -Parent $Log
if ($LogDir -and -not (Test-Path -LiteralPath $LogDir)) { New-Item -ItemType Directory -Path $LogDir | Out-Null }
Invoke-Rotate

try {
    Set-Location -LiteralPath $RepoDir -ErrorAction Stop
} catch {
    Write-Stamped "cannot cd to ${RepoDir}: $_"
    exit 1
}
$VenvPython = Join-Path $RepoDir ".venv\Scripts\python.exe"
$Python = if (Test-Path -LiteralPath $VenvPython) { $VenvPython } else { "python" }
$TrainArgs = @("scripts/train_models.py", "--force", "--days-back", "180", "--trigger", "schedule") + $args

Write-Stamped "scheduled training started: $Python $($TrainArgs -join ' ')"
# 2>&1 merges stderr; each line (text or error record) is stamped as it arrives.
& $Python @TrainArgs 2>&1 | ForEach-Object { Write-Stamped "$_" }
$status = $LASTEXITCODE
if ($null -eq $status) { $status = 1 }
Write-Stamped "scheduled training finished with exit status $status"
exit $status
