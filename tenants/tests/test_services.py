"""The tenancy use cases on their own: tokens and members, without the API."""

from datetime import UTC, datetime, timedelta

import pytest

from base.errors import Conflict, Forbidden
from tenants import services
from tenants.models import ApiToken, Role, hash_token
from tenants.tests.factories import MembershipFactory, UserFactory, token_key

pytestmark = pytest.mark.django_db

NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_token_in_use_is_touched_at_most_once_a_minute(time_machine):
    # given a token first used at nine
    time_machine.move_to(NINE, tick=False)
    user = UserFactory()
    key = token_key(user)
    assert services.authenticate_token(key).user == user
    # when it is used again half a minute later
    time_machine.shift(timedelta(seconds=30))
    services.authenticate_token(key)
    # then its last use is still nine: a token in a tight loop does not write each call
    assert ApiToken.objects.get(user=user).last_used_at == NINE
    # and once more than a minute has passed, it is touched again
    time_machine.shift(timedelta(seconds=31))
    services.authenticate_token(key)
    assert ApiToken.objects.get(user=user).last_used_at == NINE + timedelta(seconds=61)


def test_a_token_is_found_with_its_user_membership_and_tenant_in_one_query(
        django_assert_num_queries):
    # given a member's token, a token of a user of no tenant, and a revoked token
    member = MembershipFactory(admin=True)
    member_key, loner_key = token_key(member.user), token_key(UserFactory())
    revoked_key = token_key(UserFactory())
    ApiToken.objects.filter(digest=hash_token(revoked_key)).update(revoked_at=NINE)
    # when each key is looked up (the first look-up of a connection also prepares it)
    assert services.find_token("bft_nobody") is None
    with django_assert_num_queries(1):
        token = services.find_token(member_key)
        # then the member's token comes with what the API reads of the caller, loaded
        assert (token.user, token.user.membership, token.user.membership.tenant) == (
            member.user, member, member.tenant)
        assert token.user.membership.role == Role.ADMIN
        assert token.digest == hash_token(member_key)
    with django_assert_num_queries(1):
        # a user of no tenant has no membership, and asking again reads nothing more
        assert services.find_token(loner_key).user.membership is None
    # a revoked token is found, as it is (authentication then refuses it)
    assert services.find_token(revoked_key).revoked_at == NINE


def test_a_revoked_token_or_a_deactivated_user_authenticates_no_more():
    # given two people's tokens
    revoked, deactivated = UserFactory(), UserFactory()
    revoked_key, deactivated_key = token_key(revoked), token_key(deactivated)
    # when one revokes its token and the other is deactivated
    services.revoke_token(ApiToken.objects.get(user=revoked), acting_user=revoked)
    deactivated.is_active = False
    deactivated.save()
    # then neither key is anyone any more
    assert services.authenticate_token(revoked_key) is None
    assert services.authenticate_token(deactivated_key) is None


def test_nobody_revokes_someone_elses_token():
    # given a colleague's token
    owner = MembershipFactory(owner=True)
    colleague = MembershipFactory(tenant=owner.tenant, admin=True)
    key = token_key(colleague.user)
    # when the owner tries to revoke it
    with pytest.raises(Forbidden):
        services.revoke_token(ApiToken.objects.get(user=colleague.user), acting_user=owner.user)
    # then it still works
    assert services.authenticate_token(key) is not None


def test_provider_staff_cannot_join_a_tenant():
    # given an owner and a provider administrator
    owner = MembershipFactory(owner=True)
    staff = UserFactory(staff=True)
    # when the owner adds the administrator's address
    with pytest.raises(Conflict) as refused:
        services.add_member(owner.tenant, email=staff.email, role=Role.READER,
                            acting_user=owner.user, site_url="http://testserver/")
    # then it is refused, and the administrator stays no one's member
    assert refused.value.errors == {"email": ["This address belongs to provider staff."]}
    assert staff.membership is None


def test_the_last_owner_cannot_step_down_but_one_of_two_can():
    # given a tenant with one owner
    owner = MembershipFactory(owner=True)
    # when the owner makes itself an admin
    with pytest.raises(Conflict):
        services.change_role(owner, role=Role.ADMIN, acting_user=owner.user)
    # then it is still the owner
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    # and with a second owner, it may
    MembershipFactory(tenant=owner.tenant, owner=True)
    services.change_role(owner, role=Role.ADMIN, acting_user=owner.user)
    owner.refresh_from_db()
    assert owner.role == Role.ADMIN
