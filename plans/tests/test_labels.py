"""The shared base names quota dimensions without importing plans: the names must agree."""

from base.web import forms, ui
from plans.models import QuotaDimension


def test_the_base_names_every_quota_dimension_as_the_plans_do():
    # given the quota's dimensions / when the base labels them / then in the same words
    assert dict(QuotaDimension.choices) == forms._FIELD_LABELS
    assert tuple(QuotaDimension.values) == ui.DIMENSIONS
