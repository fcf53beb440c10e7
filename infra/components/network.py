"""Network for the database: existing subnets, or a new isolated VPC with no internet route."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components._common import child, tags
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
    role: str = "primary"
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
        super().__init__("dbplatform:index:Network", name, None, opts)
        provider = (
            opts.provider if opts and isinstance(opts.provider, pulumi.ProviderResource) else None
        )
        n = args.names
        suffix = "" if args.role == "primary" else f"-{args.role}"

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
                opts=child(self, provider=provider),
            )
            # A route table with no routes but the implicit local one: nothing in these subnets
            # can reach, or be reached from, the internet.
            isolated = aws.ec2.RouteTable(
                f"{name}-isolated",
                vpc_id=vpc.id,
                tags=tags(args.base_tags, f"{n.prefix}{suffix}-isolated"),
                opts=child(self, provider=provider),
            )
            azs = aws.get_availability_zones_output(
                state="available", opts=pulumi.InvokeOutputOptions(parent=self, provider=provider)
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
                    opts=child(self, provider=provider),
                )
                aws.ec2.RouteTableAssociation(
                    f"{name}-private-{i}",
                    subnet_id=subnet.id,
                    route_table_id=isolated.id,
                    opts=child(self, provider=provider),
                )
                subnets.append(subnet)
            vpc_id = vpc.id
            subnet_ids = pulumi.Output.all(*[s.id for s in subnets])

        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            name=f"{n.subnet_group}{suffix}",
            description=f"dbplatform {n.stack} database subnets",
            subnet_ids=subnet_ids,
            tags=tags(args.base_tags, f"{n.subnet_group}{suffix}"),
            opts=child(self, provider=provider),
        )
        sg = aws.ec2.SecurityGroup(
            f"{name}-db",
            name=f"{n.security_group}{suffix}",
            description=f"PostgreSQL {args.port} to dbplatform {n.stack} from allowed sources only",
            vpc_id=vpc_id,
            tags=tags(args.base_tags, f"{n.security_group}{suffix}"),
            opts=child(self, provider=provider),
        )
        for i, cidr in enumerate(args.allowed_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-cidr-{i}",
                security_group_id=sg.id,
                ip_protocol="tcp",
                from_port=args.port,
                to_port=args.port,
                cidr_ipv4=cidr,
                description=f"PostgreSQL from {cidr}",
                tags=tags(args.base_tags, f"{n.security_group}{suffix}-cidr-{i}"),
                opts=child(self, provider=provider),
            )
        for i, source in enumerate(args.allowed_security_group_ids):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-sg-{i}",
                security_group_id=sg.id,
                ip_protocol="tcp",
                from_port=args.port,
                to_port=args.port,
                referenced_security_group_id=source,
                description=f"PostgreSQL from {source}",
                tags=tags(args.base_tags, f"{n.security_group}{suffix}-sg-{i}"),
                opts=child(self, provider=provider),
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
