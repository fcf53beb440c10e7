"""Network for the database: the application's subnets, or a VPC of its own connected to them.

A created VPC has no internet route; it reaches the application's network through the VPC
peering or transit gateway attachment that the config names (README, "Connectivity"), with the
routes on both sides. Its default security group is emptied and rejected traffic is logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from infra.components._common import (
    assume_role_policy,
    child,
    permissions_boundary,
    tags,
    tcp_rule,
)
from infra.config import ConnectConfig
from infra.naming import Names

# VPC flow logs of rejected traffic, kept as long as the database's own logs (CloudWatch.16:
# at least a year).
FLOW_LOG_RETENTION_DAYS = 365


@dataclass(frozen=True, kw_only=True)
class NetworkArgs:
    """Inputs of the Network component."""

    names: Names
    """physical names of the stack"""
    base_tags: dict[str, str]
    """tags merged into every child"""
    vpc_id: str | None
    """existing VPC; None creates an isolated one"""
    subnet_ids: tuple[str, ...]
    """existing private subnets (with vpc_id)"""
    cidr: str
    """CIDR of a created VPC"""
    az_count: int
    """AZs of a created VPC"""
    allowed_cidrs: tuple[str, ...]
    """CIDRs admitted to the database port"""
    allowed_security_group_ids: tuple[str, ...]
    """security groups admitted to the database port"""
    port: int
    """the PostgreSQL port"""
    account_id: pulumi.Input[str]
    """the AWS account (the flow-log role's confused-deputy condition)"""
    connect: ConnectConfig
    """how a created VPC reaches the application (none, peering, transit gateway)"""
    role: Literal["primary", "dr"] = "primary"
    """'primary' or 'dr': the DR copy gets its own names"""


class Network(pulumi.ComponentResource):
    """Private subnets in >= 2 AZs, a DB subnet group and a security group for PostgreSQL only."""

    vpc_id: pulumi.Output[str]
    """the VPC the database lives in"""
    subnet_ids: pulumi.Output[list[str]]
    """private subnets of the subnet group"""
    subnet_group_name: pulumi.Output[str]
    """DB subnet group name"""
    security_group_id: pulumi.Output[str]
    """security group attached to every DB instance"""
    availability_zones: pulumi.Output[list[str]]
    """AZs of a created VPC's subnets (empty with an existing VPC)"""

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Children inherit the component's provider: the DR network is declared with the DR
        # region's, so everything below lands in that region.
        super().__init__("dbplatform:index:Network", name, None, opts)
        n = args.names
        dr = args.role == "dr"
        suffix = "-dr" if dr else ""
        subnet_group_name = n.dr_subnet_group if dr else n.subnet_group
        sg_name = n.dr_security_group if dr else n.security_group

        if args.vpc_id is not None:
            vpc_id: pulumi.Input[str] = args.vpc_id
            subnet_ids: pulumi.Input[list[str]] = list(args.subnet_ids)
            az_names: pulumi.Input[list[str]] = []
        else:
            vpc = aws.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=args.cidr,
                enable_dns_hostnames=True,
                enable_dns_support=True,
                tags=tags(args.base_tags, f"{n.prefix}{suffix}"),
                opts=child(self),
            )
            # No internet route ever: besides the implicit local route, only the routes to the
            # application's CIDRs (_connect) are added, as resources of their own.
            isolated = aws.ec2.RouteTable(
                f"{name}-isolated",
                vpc_id=vpc.id,
                tags=tags(args.base_tags, f"{n.prefix}{suffix}-isolated"),
                opts=child(self),
            )
            # Availability Zones only: with Local Zones opted in, the API lists them too and
            # their names (us-east-1-atl-2a) sort before us-east-1a (pulumi_aws
            # get_availability_zones docstring: filter opt-in-status = opt-in-not-required).
            azs = aws.get_availability_zones_output(
                state="available",
                filters=[
                    aws.GetAvailabilityZonesFilterArgs(
                        name="opt-in-status", values=["opt-in-not-required"]
                    )
                ],
                opts=pulumi.InvokeOutputOptions(parent=self),
            )
            subnets = []
            for i in range(args.az_count):
                subnet = aws.ec2.Subnet(
                    f"{name}-private-{i}",
                    vpc_id=vpc.id,
                    cidr_block=_subnet_cidr(args.cidr, i),
                    availability_zone=azs.names[i],
                    map_public_ip_on_launch=False,
                    tags=tags(args.base_tags, f"{n.prefix}{suffix}-private-{i}"),
                    # The zone list is read at every run: a zone that is not 'available' for
                    # a while (an outage) or a new one shifts it. A subnet's zone forces a new
                    # subnet (terraform-provider-aws internal/service/ec2/vpc_subnet.go), whose
                    # old one RDS still uses, so a subnet keeps the zone it was made in. Left
                    # open: raising azCount after the list shifted may give the new subnet a
                    # zone an older one holds; check `aws ec2 describe-subnets` first.
                    opts=child(self, ignore_changes=["availabilityZone"]),
                )
                aws.ec2.RouteTableAssociation(
                    f"{name}-private-{i}",
                    subnet_id=subnet.id,
                    route_table_id=isolated.id,
                    opts=child(self),
                )
                subnets.append(subnet)
            vpc_id = vpc.id
            subnet_ids = pulumi.Output.all(*[s.id for s in subnets])
            az_names = azs.names.apply(lambda names: list(names[: args.az_count]))
            # Adopting the default security group removes every rule AWS put in it (EC2.2).
            aws.ec2.DefaultSecurityGroup(
                f"{name}-default-sg",
                vpc_id=vpc.id,
                tags=tags(args.base_tags, f"{n.prefix}{suffix}-default-no-rules"),
                opts=child(self),
            )
            self._flow_logs(name, args, vpc.id, suffix)
            self._connect(
                name,
                args=args,
                vpc_id=vpc.id,
                route_table_id=isolated.id,
                subnet_ids=subnet_ids,
                suffix=suffix,
            )

        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            name=subnet_group_name,
            description=f"dbplatform {n.stack} database subnets",
            subnet_ids=subnet_ids,
            tags=tags(args.base_tags, subnet_group_name),
            opts=child(self),
        )
        sg = aws.ec2.SecurityGroup(
            f"{name}-db",
            name=sg_name,
            # No port here: a description cannot be updated (EC2 has no API for it), so a port
            # in it would replace the group under the same name, which EC2 refuses; the port is
            # a tag. For the same reason the description is never changed once the group
            # exists: groups created before this text read "PostgreSQL <port> to dbplatform
            # <stack> from allowed sources only" and keep it (a replacement could not delete
            # the old group either, while the database uses it); a group replaced for another
            # reason (a new VPC) may keep the old text too.
            description=f"PostgreSQL of dbplatform {n.stack} from allowed sources only",
            vpc_id=vpc_id,
            tags={**tags(args.base_tags, sg_name), "port": str(args.port)},
            opts=child(self, ignore_changes=["description"]),
        )
        sources = [("cidr", i, c, None) for i, c in enumerate(args.allowed_cidrs)] + [
            ("sg", i, None, g) for i, g in enumerate(args.allowed_security_group_ids)
        ]
        for kind, i, cidr, group in sources:
            tcp_rule(
                self,
                f"{name}-from-{kind}-{i}",
                direction="ingress",
                security_group_id=sg.id,
                port=args.port,
                description=f"PostgreSQL from {cidr or group}",
                base_tags=args.base_tags,
                tag_name=f"{sg_name}-{kind}-{i}",
                cidr=cidr,
                peer_security_group_id=group,
            )

        self.vpc_id = pulumi.Output.from_input(vpc_id)
        self.subnet_ids = pulumi.Output.from_input(subnet_ids)
        self.subnet_group_name = subnet_group.name
        self.security_group_id = sg.id
        self.availability_zones = pulumi.Output.from_input(az_names)
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "subnet_ids": self.subnet_ids,
                "subnet_group_name": self.subnet_group_name,
                "security_group_id": self.security_group_id,
            }
        )

    def _flow_logs(
        self, name: str, args: NetworkArgs, vpc_id: pulumi.Input[str], suffix: str
    ) -> None:
        """Rejected traffic of the created VPC into a log group (EC2.6)."""
        n = args.names
        group_name = f"/dbplatform/{n.stack}/vpc-flow-logs{suffix}"
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=group_name,
            retention_in_days=FLOW_LOG_RETENTION_DAYS,
            tags=tags(args.base_tags, group_name),
            opts=child(self),
        )
        role_name = n.flow_log_role(suffix)
        role = aws.iam.Role(
            f"{name}-flow-logs",
            name=role_name,
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: assume_role_policy(
                    "vpc-flow-logs.amazonaws.com", source_account=account
                )
            ),
            permissions_boundary=permissions_boundary(args.account_id, self),
            tags=tags(args.base_tags, role_name),
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogGroups",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    },
                    sort_keys=True,
                )
            ),
            opts=child(self),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc_id,
            traffic_type="REJECT",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            tags=tags(args.base_tags, f"{n.prefix}{suffix}-flow-logs"),
            opts=child(self),
        )

    def _connect(
        self,
        name: str,
        *,
        args: NetworkArgs,
        vpc_id: pulumi.Input[str],
        route_table_id: pulumi.Input[str],
        subnet_ids: pulumi.Input[list[str]],
        suffix: str,
    ) -> None:
        """The peering or transit gateway attachment to the application, and its routes."""
        c, n = args.connect, args.names
        if c.mode == "peering":
            assert c.peer_vpc_id is not None  # config validation
            # Same account and region: the requester accepts its own request.
            peering = aws.ec2.VpcPeeringConnection(
                f"{name}-peering",
                vpc_id=vpc_id,
                peer_vpc_id=c.peer_vpc_id,
                auto_accept=True,
                tags=tags(args.base_tags, f"{n.prefix}{suffix}-to-app"),
                opts=child(self),
            )
            for i, cidr in enumerate(c.peer_cidrs):
                aws.ec2.Route(
                    f"{name}-to-app-{i}",
                    route_table_id=route_table_id,
                    destination_cidr_block=cidr,
                    vpc_peering_connection_id=peering.id,
                    opts=child(self),
                )
            for i, rtb in enumerate(c.peer_route_table_ids):
                aws.ec2.Route(
                    f"{name}-from-app-{i}",
                    route_table_id=rtb,
                    destination_cidr_block=args.cidr,
                    vpc_peering_connection_id=peering.id,
                    opts=child(self),
                )
        elif c.mode == "transitGateway":
            assert c.transit_gateway_id is not None  # config validation
            # The attachment's association and propagation on the transit gateway's route
            # tables belong to whoever owns the gateway (README, "Connectivity").
            attachment = aws.ec2transitgateway.VpcAttachment(
                f"{name}-tgw",
                transit_gateway_id=c.transit_gateway_id,
                vpc_id=vpc_id,
                subnet_ids=subnet_ids,
                dns_support="enable",
                tags=tags(args.base_tags, f"{n.prefix}{suffix}-to-app"),
                opts=child(self),
            )
            for i, cidr in enumerate(c.peer_cidrs):
                aws.ec2.Route(
                    f"{name}-to-app-{i}",
                    route_table_id=route_table_id,
                    destination_cidr_block=cidr,
                    transit_gateway_id=c.transit_gateway_id,
                    opts=child(self, depends_on=[attachment]),
                )


def _subnet_cidr(vpc_cidr: str, index: int) -> str:
    """The index-th /20 (or /vpc+4) of the VPC: room for 16 subnets, deterministic."""
    import ipaddress

    net = ipaddress.ip_network(vpc_cidr)
    return str(list(net.subnets(prefixlen_diff=4))[index])
