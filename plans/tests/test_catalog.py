"""The provider's catalog rules on their own: what a plan may be made of."""

import pytest

from base.errors import Invalid
from fabric import services as fabric_services
from fabric.tests.factories import StampFactory, TemplateFactory
from plans import services
from plans.tests.factories import PlanFactory

pytestmark = pytest.mark.django_db


def test_a_cloud_that_plans_use_stays_on_its_stamp():
    # given a plan on a cloud
    plan = PlanFactory()
    home = plan.cloud.stamp_id
    # when the provider moves the cloud to another stamp
    with pytest.raises(Invalid) as refused:
        fabric_services.save_cloud(plan.cloud, fields={"stamp": StampFactory()},
                                   acting_user=None)
    # then it is refused, and the cloud stays where it was
    assert refused.value.errors == {"stamp": ["Plans are bound to this cloud."]}
    plan.cloud.refresh_from_db()
    assert plan.cloud.stamp_id == home


def test_a_plan_offers_only_images_of_its_own_cloud():
    # given a plan, and an image of another cloud
    plan = PlanFactory()
    elsewhere = TemplateFactory()
    # when the provider adds the image to the plan
    with pytest.raises(Invalid) as refused:
        services.save_plan(plan, fields={}, templates=[elsewhere], acting_user=None)
    # then it is refused, naming the image and the cloud, and the plan keeps none
    assert refused.value.errors == {
        "templates": [f"'{elsewhere.name}' is not in cloud '{plan.cloud.name}'."]}
    assert not plan.templates.exists()
