"""Load the demo provider data. Idempotent: running it again changes nothing."""

import os
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from billing import prices
from dr_addon.models import NetworkMapping
from fabric import services as fabric
from fabric.models import Cloud, DriverKind, Stamp, Template
from plans import services as plan_services
from plans.models import AddOn, AddOnKind, Plan, PlanState
from provisioning import lifecycle
from provisioning.tasks_menu import services as task_services
from tenants import services as tenant_services
from tenants.models import User

ADMIN_EMAIL = "admin@buffet.local"
ADMIN_PASSWORD = "buffet-admin-demo"
TENANT_EMAIL = "demo@contoso.example"
TENANT_PASSWORD = "contoso-demo-2026"

TEMPLATES = [
    ("debian-12", "Debian 12", "img-debian-12", 1, 512, 10),
    ("ubuntu-24.04", "Ubuntu 24.04 LTS", "img-ubuntu-2404", 1, 1024, 20),
    ("windows-2022", "Windows Server 2022", "img-win-2022", 2, 4096, 64),
]

PLANS = [
    ("Starter", "Two small VMs for trying things out.", "9.00",
     dict(vcpus=4, memory_mb=8192, storage_gb=100, vms=2, networks=2, snapshots=4), 2, 4096),
    ("Business", "A team's application tier.", "49.00",
     dict(vcpus=16, memory_mb=32768, storage_gb=500, vms=10, networks=5, snapshots=20), 8, 16384),
    ("Enterprise", "Large workloads with DR.", "249.00",
     dict(vcpus=64, memory_mb=262144, storage_gb=4000, vms=50, networks=20, snapshots=100), 32,
     131072),
]

# The seed's offer: "your monthly subscription only covers 1 GB and 0.5 core; $0.021/minute
# if you'd like to burst" (quotas are whole units: 1 vCPU, burst 1 more, and 1 GB more).
BURSTABLE = ("Burstable", "1 vCPU and 1 GB, with burst: 0.021 a minute for the second core.",
             "4.00", dict(vcpus=1, memory_mb=1024, storage_gb=20, vms=1, networks=1,
                          snapshots=2), 2, 2048)
BURST = {"limits": {"vcpus": 1, "memory_mb": 1024},
         "price_per_minute": {"vcpus": Decimal("0.021"), "memory_mb": Decimal("0.00002")}}
# Usage billed on top of the monthly prices (per unit-minute).
USAGE_PRICES = [{"meter": "dr.protected_vms", "unit_price": "0.0003"},
                {"meter": "snapshots", "unit_price": "0.00002"}]


class Command(BaseCommand):
    help = "Load demo provider data: two stamps, clouds, templates, plans, add-ons, a tenant."

    def add_arguments(self, parser):
        parser.add_argument("--stamp-a", default="http://127.0.0.1:8101")
        parser.add_argument("--stamp-b", default="http://127.0.0.1:8102")
        parser.add_argument("--driver", default=DriverKind.SIMULATED,
                            choices=DriverKind.values)

    @transaction.atomic
    def handle(self, *args, stamp_a, stamp_b, driver, **options):
        admin = self._admin()
        stamps = [
            self._stamp("stamp-a", "west-europe", driver, stamp_a, admin),
            self._stamp("stamp-b", "north-europe", driver, stamp_b, admin),
        ]
        clouds = [
            self._cloud("west-general", stamps[0], "10.10.0.0/24", "198.51.100.0/26", admin),
            self._cloud("north-recovery", stamps[1], "10.20.0.0/24", "198.51.100.64/26", admin),
        ]
        templates = {c.name: [self._template(c, *t) for t in TEMPLATES] for c in clouds}
        quota_addon = self._addon("Extra capacity", AddOnKind.QUOTA, admin,
                                  quotas=dict(vcpus=8, memory_mb=16384, storage_gb=200, vms=4),
                                  price="19.00")
        dr_addon = self._addon("Disaster recovery", AddOnKind.DR, admin,
                               recovery_cloud=clouds[1], price="29.00")
        for network in clouds[0].provider_networks:
            NetworkMapping.objects.get_or_create(addon=dr_addon, primary_network=network,
                                                 defaults={"recovery_network": "external"})
        plans = []
        for name, description, price, quotas, max_vcpus, max_memory in PLANS:
            addons = [quota_addon] + ([dr_addon] if name != "Starter" else [])
            plans.append(self._plan(name, description, price, quotas, max_vcpus, max_memory,
                                    clouds[0], templates[clouds[0].name], addons, admin))
        burstable = self._plan(*BURSTABLE, clouds[0], templates[clouds[0].name],
                               [quota_addon], admin, burst=BURST)
        for plan in [*plans, burstable]:
            if not plan.prices.exists():
                prices.record_plan_prices(plan, before=None, usage=USAGE_PRICES)
        plans.append(burstable)
        # The menu of self-service tasks, on every demo plan.
        tasks = task_services.publish_builtins(plans, acting_user=admin)
        self._tenant(plans[1])
        self.stdout.write(self.style.SUCCESS(
            f"Demo data ready: {len(stamps)} stamps, {len(clouds)} clouds, {len(plans)} plans, "
            f"{len(tasks)} tasks."))

    def _admin(self) -> User:
        email = os.environ.get("BUFFET_ADMIN_EMAIL", ADMIN_EMAIL)
        password = os.environ.get("BUFFET_ADMIN_PASSWORD", ADMIN_PASSWORD)
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_superuser(email, password, full_name="Provider admin")
        # Staff need two-factor: the demo admin's authenticator key is printed at start-up.
        tenant_services.provision_two_factor(user)
        return user

    def _stamp(self, name, region, driver, endpoint, admin) -> Stamp:
        stamp = Stamp.objects.filter(name=name).first()
        fields = {"name": name, "region": region, "driver": driver, "endpoint": endpoint}
        if stamp and all(getattr(stamp, k) == v for k, v in fields.items()):
            return stamp
        return fabric.save_stamp(stamp, fields=fields, acting_user=admin)

    def _cloud(self, name, stamp, cidr, pool, admin) -> Cloud:
        cloud = Cloud.objects.filter(name=name).first()
        if cloud:
            return cloud
        return fabric.save_cloud(None, acting_user=admin, fields=dict(
            name=name, stamp=stamp, vcpus=256, memory_mb=1048576, storage_gb=20000, vms=500,
            overcommit_cpu=Decimal("4"), overcommit_memory=Decimal("1.5"),
            default_network_cidr=cidr, external_pool_cidr=pool))

    def _template(self, cloud, name, os_name, image, vcpus, memory, disk) -> Template:
        template = Template.objects.filter(cloud=cloud, name=name).first()
        if template:
            return template
        return fabric.save_template(None, acting_user=None, fields=dict(
            cloud=cloud, name=name, os=os_name, image=image, min_vcpus=vcpus,
            min_memory_mb=memory, min_disk_gb=disk))

    def _addon(self, name, kind, admin, *, quotas=None, recovery_cloud=None, price) -> AddOn:
        addon = AddOn.objects.filter(name=name).first()
        if addon:
            return addon
        fields = {"name": name, "kind": kind, "recovery_cloud": recovery_cloud,
                  "price_monthly": Decimal(price)}
        fields.update({f"quota_{k}": v for k, v in (quotas or {}).items()})
        return plan_services.save_addon(None, fields=fields, acting_user=admin)

    def _plan(self, name, description, price, quotas, max_vcpus, max_memory, cloud, templates,
              addons, admin, burst=None) -> Plan:
        plan = Plan.objects.filter(name=name).first()
        if plan:
            return plan
        fields = {"name": name, "description": description, "state": PlanState.PUBLIC,
                  "cloud": cloud, "price_monthly": Decimal(price), "max_vm_vcpus": max_vcpus,
                  "max_vm_memory_mb": max_memory, "burst": burst}
        fields.update({f"quota_{k}": v for k, v in quotas.items()})
        return plan_services.save_plan(None, fields=fields, templates=templates, addons=addons,
                                       acting_user=admin)

    def _tenant(self, plan) -> None:
        if User.objects.filter(email__iexact=TENANT_EMAIL).exists():  # names may repeat
            return
        membership = tenant_services.sign_up(email=TENANT_EMAIL, password=TENANT_PASSWORD,
                                             tenant_name="Contoso", full_name="Dana Demo")
        lifecycle.subscribe(membership.tenant, plan_id=plan.pk, name="Production",
                                acting_user=membership.user)
