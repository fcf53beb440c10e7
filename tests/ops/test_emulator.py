"""The test emulator as a client sees it: moto behind devtools/http_server.py on 127.0.0.1."""

from __future__ import annotations

from tests.ops.support import AwsEnv


def test_a_clients_calls_share_one_connection_as_with_aws(aws: AwsEnv) -> None:
    ssm = aws.session.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/t/a", Value="1", Type="String")
    for _ in range(4):
        answer = ssm.get_parameter(Name="/t/a")
        assert answer["Parameter"]["Value"] == "1"
        assert answer["ResponseMetadata"]["HTTPHeaders"]["connection"] == "keep-alive"
    pools = ssm._endpoint.http_session._manager.pools
    pool = pools[next(iter(pools.keys()))]
    # urllib3 opened one connection for the five calls (werkzeug's server closed each one)
    assert (len(pools), pool.num_connections, pool.num_requests) == (1, 1, 5)
