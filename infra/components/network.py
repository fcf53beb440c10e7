"""Network for the database: existing subnets, or a new isolated VPC with no internet route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from infra.components._common import child, tags, tcp_rule
from infra.naming import Names


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
        else:
            vpc = aws.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=args.cidr,
                enable_dns_hostnames=True,
                enable_dns_support=True,
                tags=tags(args.base_tags, f"{n.prefix}{suffix}"),
                opts=child(self),
            )
            # A route table with no routes but the implicit local one: nothing in these subnets
            # can reach, or be reached from, the internet.
            isolated = aws.ec2.RouteTable(
                f"{name}-isolated",
                vpc_id=vpc.id,
                tags=tags(args.base_tags, f"{n.prefix}{suffix}-isolated"),
                opts=child(self),
            )
            azs = aws.get_availability_zones_output(
                state="available", opts=pulumi.InvokeOutputOptions(parent=self)
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
                    opts=child(self),
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
            description=f"PostgreSQL {args.port} to dbplatform {n.stack} from allowed sources only",
            vpc_id=vpc_id,
            tags=tags(args.base_tags, sg_name),
            opts=child(self),
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
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "subnet_ids": self.subnet_ids,
                "subnet_group_name": self.subnet_group_name,
                "security_group_id": self.security_group_id,
            }
        )


def _subnet_cidr(vpc_cidr: str, index: int) -> str:
    """The index-th /20 (or /vpc+4) of the VPC: room for 16 subnets, deterministic."""
    import ipaddress

    net = ipaddress.ip_network(vpc_cidr)
    return str(list(net.subnets(prefixlen_diff=4))[index])
