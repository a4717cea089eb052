"""Factories of the fabric catalog: stamps, clouds with their capacity ledger, templates.

They build through ``fabric.services`` so that a factory's row is one the provider could
have made: validated, and a cloud always with its capacity rows. Stamps use the in-process
``memory`` driver, each on an endpoint of its own. (Why factories live in each app: see
``tenants.tests.factories``.)
"""

from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from fabric import services
from fabric.models import Cloud, DriverKind, Stamp, Template

__all__ = ["CloudFactory", "StampFactory", "TemplateFactory"]


class StampFactory(DjangoModelFactory):
    class Meta:
        model = Stamp

    name = factory.Sequence(lambda n: f"stamp-{n}")
    region = "west"
    driver = DriverKind.MEMORY
    endpoint = factory.LazyAttribute(lambda stamp: f"mem://{stamp.name}")

    @classmethod
    def _create(cls, model_class, *args, **fields):
        return services.save_stamp(None, fields=fields, acting_user=None)


class CloudFactory(DjangoModelFactory):
    """A cloud on a stamp of its own, with the capacity rows ``save_cloud`` writes."""

    class Meta:
        model = Cloud

    name = factory.Sequence(lambda n: f"cloud-{n}")
    stamp = factory.SubFactory(StampFactory)
    vcpus = 64
    memory_mb = 262144
    storage_gb = 4000
    vms = 100
    overcommit_cpu = Decimal("1")
    overcommit_memory = Decimal("1")

    @classmethod
    def _create(cls, model_class, *args, **fields):
        return services.save_cloud(None, fields=fields, acting_user=None)


class TemplateFactory(DjangoModelFactory):
    class Meta:
        model = Template

    name = factory.Sequence(lambda n: f"image-{n}")
    os = "Debian 12"
    cloud = factory.SubFactory(CloudFactory)
    image = factory.LazyAttribute(lambda template: f"img-{template.name}")
    min_vcpus = 1
    min_memory_mb = 512
    min_disk_gb = 10

    @classmethod
    def _create(cls, model_class, *args, **fields):
        return services.save_template(None, fields=fields, acting_user=None)
