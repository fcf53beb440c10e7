"""The CloudWatch metrics a restore check publishes, so an alarm can page when restores fail.

Namespace `dbplatform/RestoreCheck`, dimension `Stack`: `RestoreSuccess` (1 verified, 0
failed), `RestoreDataVerified` (1 only when SQL read the restored data and every data check
passed; 0 for a metadata-only check) and `RestoreDurationSeconds` (restore call to verified
instance). An alarm on RestoreSuccess
(Minimum < 1, or missing data over a day: the daily check did not run) is the runbooks'
"daily restore test" turned into a page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

NAMESPACE = "dbplatform/RestoreCheck"
SUCCESS = "RestoreSuccess"
DURATION = "RestoreDurationSeconds"
DATA_VERIFIED = "RestoreDataVerified"
DIMENSION = "Stack"


def metric_data(
    stack: str,
    *,
    success: bool,
    duration_seconds: float | None,
    at: datetime,
    data_verified: bool = False,
) -> dict[str, Any]:
    """PutMetricData parameters for one restore check."""
    dims = [{"Name": DIMENSION, "Value": stack}]
    data: list[dict[str, Any]] = [
        {
            "MetricName": SUCCESS,
            "Dimensions": dims,
            "Timestamp": at,
            "Value": 1.0 if success else 0.0,
            "Unit": "Count",
        },
        {
            "MetricName": DATA_VERIFIED,
            "Dimensions": dims,
            "Timestamp": at,
            "Value": 1.0 if success and data_verified else 0.0,
            "Unit": "Count",
        },
    ]
    if duration_seconds is not None:
        data.append(
            {
                "MetricName": DURATION,
                "Dimensions": dims,
                "Timestamp": at,
                "Value": round(duration_seconds, 1),
                "Unit": "Seconds",
            }
        )
    return {"Namespace": NAMESPACE, "MetricData": data}
