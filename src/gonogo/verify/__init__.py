"""`gonogo verify`: is a run's verdict what its evidence gives, and are its reports and
artifacts what was recorded? Tamper-evidence, not a signature: docs/verify.md."""

from gonogo.verify.verification import (
    Verification,
    report_format,
    run_of_report_file,
    verify_report_file,
    verify_run,
)

__all__ = ["Verification", "report_format", "run_of_report_file", "verify_report_file", "verify_run"]
