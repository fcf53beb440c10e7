"""The stack-shaped floor of a synth (../shared/reviews/perf.md §1 and its appendix, "floor S"):
what any Pulumi Python program of prod's shape pays, with none of this project's code.

It imports pulumi and pulumi_aws, touches the eleven pulumi_aws service packages the program
uses and pulumi_random, then declares, under Pulumi's mocks (preview), one SNS topic and N
alarm-sized resources (a CloudWatch metric alarm with the 15 inputs of the project's alarms,
its actions pointing at the topic). N is prod's resource count: given by bench/bench_ratios.py,
else read from tests/golden/prod.json.

Run: `python bench/floor.py [N]` (one process = one measurement; bench/bench_ratios.py times it).
"""

from __future__ import annotations

import sys
from typing import Any


def prod_count() -> int:
    """prod's registrations in the committed snapshot (bench_ratios passes the count it just
    synthesised instead, so that reading this file is not part of the measured floor)."""
    import json
    from pathlib import Path

    golden = Path(__file__).resolve().parent.parent / "tests" / "golden" / "prod.json"
    return len(json.loads(golden.read_text(encoding="utf-8"))["resources"])


def main(count: int) -> None:
    import pulumi
    import pulumi_aws as aws
    import pulumi_random
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    # The service packages the program uses: their first use loads ~480 modules.
    touched = (
        aws.ec2.Vpc,
        aws.rds.Instance,
        aws.cloudwatch.MetricAlarm,
        aws.route53.HealthCheck,
        aws.backup.Plan,
        aws.vpc.SecurityGroupIngressRule,
        aws.iam.Role,
        aws.sns.Topic,
        aws.kms.Key,
        aws.secretsmanager.Secret,
        aws.serverlessrepository.CloudFormationStack,
        pulumi_random.RandomPassword,
    )
    assert all(touched)

    class Echo(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[Any, dict]:
            return None, {}

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, Any]:
            return {}, None

    pulumi.runtime.set_mocks(Echo(), project="floor", stack="prod", preview=True)
    tags = {"project": "floor", "stack": "prod", "owner": "o", "cost-center": "c", "m": "p"}

    def program() -> None:
        topic = aws.sns.Topic("t", name="t", tags=tags)
        for i in range(count - 1):
            aws.cloudwatch.MetricAlarm(
                f"a{i}",
                name=f"a{i}",
                alarm_description="floor",
                comparison_operator="GreaterThanThreshold",
                evaluation_periods=5,
                datapoints_to_alarm=5,
                metric_name="CPUUtilization",
                namespace="AWS/RDS",
                period=60,
                statistic="Average",
                threshold=80,
                treat_missing_data="missing",
                dimensions={"DBInstanceIdentifier": "db"},
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                tags=tags,
            )

    _sync_await(run_pulumi_func(program))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else prod_count())
