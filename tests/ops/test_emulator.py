"""The test emulator as a client sees it: moto behind devtools/http_server.py on 127.0.0.1."""

from __future__ import annotations

from tests.ops.support import AwsEnv


def test_a_clients_calls_share_one_connection_as_with_aws(aws: AwsEnv) -> None:
    """Five calls go down one TCP connection (werkzeug's server closed each one; urllib3 then
    reconnects the same pooled connection object, so its counters cannot tell: the socket's
    local port can)."""
    ssm = aws.session.client("ssm", region_name="us-east-1")
    ports = []

    def port() -> int:
        pools = ssm._endpoint.http_session._manager.pools
        conn = pools[next(iter(pools.keys()))].pool.queue[-1]  # the one just put back
        return int(conn.sock.getsockname()[1])

    ssm.put_parameter(Name="/t/a", Value="1", Type="String")
    ports.append(port())
    for _ in range(4):
        answer = ssm.get_parameter(Name="/t/a")
        assert answer["Parameter"]["Value"] == "1"
        assert answer["ResponseMetadata"]["HTTPHeaders"]["connection"] == "keep-alive"
        ports.append(port())
    assert len(ports) == 5 and len(set(ports)) == 1, ports
