"""The two faces of the portal (base.faces): with BUFFET_PROVIDER_HOSTS set, the provider's
paths, logins and tokens exist only on its hosts; the public host knows nothing of them."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from conftest import STAFF_PASSWORD, web_login
from tenants.models import User

PUBLIC = "127.0.0.1"
PROVIDER = "admin.localhost"
PROVIDER_PATHS = ["/admin/", "/admin/login/", "/admin/stamps/", "/admin/lockouts/",
                  "/admin/dr/", "/api/v1/admin/", "/api/v1/admin/stamps/",
                  "/api/v1/admin/jobs/", "/api/v1/admin/tenants/", "/django-admin/",
                  "/django-admin/login/", "/django-admin/tenants/user/"]


@pytest.fixture
def split(settings):  # after ``staff``: its token is got on the shared face
    """The provider is reached at admin.localhost; the public at 127.0.0.1."""
    settings.BUFFET_PROVIDER_HOSTS = [PROVIDER]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, PROVIDER]
    return settings


def on(host: str, client=None, **extra):
    """A client whose requests go to ``host``."""
    client = client or APIClient()
    client.defaults.update(HTTP_HOST=host, **extra)
    return client


def token_request(host: str, email: str, password: str, **more):
    return on(host).post("/api/v1/auth/token/", {"email": email, "password": password,
                                                 **more}, format="json")


# --- provider paths -------------------------------------------------------------------

@pytest.mark.parametrize("path", PROVIDER_PATHS)
def test_a_provider_path_on_the_public_host_is_404_even_with_a_staff_token(staff, split, path):
    # given a staff token, issued on the provider's face
    token = staff.client._credentials["HTTP_AUTHORIZATION"]
    unknown = on(PUBLIC).get("/api/v1/no-such-thing/" if path.startswith("/api/")
                             else "/no-such-page/")
    for client in (on(PUBLIC), on(PUBLIC, HTTP_AUTHORIZATION=token)):
        # when anyone asks the public host for a provider path
        response = client.get(path)
        # then it is not there, exactly as a path that never existed
        assert response.status_code == 404, path
        assert response["Content-Type"] == unknown["Content-Type"]
        if path.startswith("/api/"):
            assert response.json() == unknown.json()


@pytest.mark.parametrize("path", ["/api/v1/admin/stamps/", "/api/v1/admin/jobs/",
                                  "/api/v1/admin/tenants/"])
def test_the_same_api_requests_work_on_the_provider_host(staff, catalog, split, path):
    token = staff.client._credentials["HTTP_AUTHORIZATION"]
    response = on(PROVIDER, HTTP_AUTHORIZATION=token).get(path)
    assert response.status_code == 200
    assert "results" in response.json()


@pytest.mark.parametrize("path", ["/admin/", "/admin/stamps/", "/admin/lockouts/",
                                  "/django-admin/", "/django-admin/tenants/user/"])
def test_the_same_pages_work_on_the_provider_host(staff, split, path):
    client = web_login(staff.user)
    assert client.get(path, HTTP_HOST=PROVIDER).status_code == 200
    assert client.get(path, HTTP_HOST=PUBLIC).status_code == 404


def test_the_provider_login_page_is_only_on_the_provider_host(split, db):
    assert Client().get("/admin/login/", HTTP_HOST=PROVIDER).status_code == 200
    assert Client().get("/admin/login/", HTTP_HOST=PUBLIC).status_code == 404
    # the tenants' login page is on both
    assert Client().get("/login/", HTTP_HOST=PUBLIC).status_code == 200


# --- staff credentials ----------------------------------------------------------------

def test_staff_get_no_token_on_the_public_host(staff, split, signup):
    # given the answer to a wrong password on the public host
    wrong = token_request(PUBLIC, staff.email, "not the password")
    # when staff ask for a token there with the right password and code
    response = token_request(PUBLIC, staff.email, STAFF_PASSWORD, otp=staff.code())
    # then it is refused exactly like a wrong password: nothing says the account exists
    assert response.status_code == wrong.status_code == 401
    assert response.json() == wrong.json()
    # and on the provider host the same request gets a token
    granted = token_request(PROVIDER, staff.email, STAFF_PASSWORD, otp=staff.code())
    assert granted.status_code == 200 and granted.json()["token"].startswith("bft_")


def test_a_tenant_gets_tokens_on_the_public_host(split, signup):
    owner = signup()
    response = token_request(PUBLIC, owner.email, "correct horse battery")
    assert response.status_code == 200
    client = on(PUBLIC, HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/v1/tenant/").json()["id"] == owner.tenant["id"]


def test_a_staff_token_is_refused_on_the_public_host(staff, split):
    token = staff.client._credentials["HTTP_AUTHORIZATION"]
    bogus = on(PUBLIC, HTTP_AUTHORIZATION="Token bft_nonsense").get("/api/v1/plans/")
    response = on(PUBLIC, HTTP_AUTHORIZATION=token).get("/api/v1/plans/")
    assert response.status_code == 401
    assert response.json() == bogus.json()
    # on the provider host it is the staff's: authenticated, though no tenant's member
    assert on(PROVIDER, HTTP_AUTHORIZATION=token).get("/api/v1/plans/").status_code == 403


def test_staff_cannot_log_in_to_the_web_on_the_public_host(staff, split):
    # when staff log in on the public host with the right password
    client = Client(HTTP_HOST=PUBLIC)
    response = client.post("/login/", {"username": staff.email, "password": STAFF_PASSWORD})
    wrong = Client(HTTP_HOST=PUBLIC).post("/login/", {"username": staff.email,
                                                      "password": "not it at all"})
    # then the page says what it says for a wrong password, and nobody is logged in
    assert response.status_code == 200
    assert "correct email" in response.content.decode()
    assert response.context["form"].errors == wrong.context["form"].errors
    assert "_auth_user_id" not in client.session
    # on the provider host the password leads to the code step
    provider = Client(HTTP_HOST=PROVIDER)
    response = provider.post("/admin/login/", {"username": staff.email,
                                               "password": STAFF_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/login/code/"


def test_a_staff_session_counts_for_nothing_on_the_public_face(staff, split):
    # given staff logged in on the provider's face (the cookie would reach another port)
    client = web_login(staff.user)
    assert client.get("/admin/", HTTP_HOST=PROVIDER).status_code == 200
    # when the same cookie is sent to the public face
    response = client.get("/", HTTP_HOST=PUBLIC)
    # then it is an anonymous visit there, and the provider session lives on
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert client.get("/api/v1/plans/", HTTP_HOST=PUBLIC).status_code == 401
    assert client.get("/admin/", HTTP_HOST=PROVIDER).status_code == 200


def test_public_guesses_do_not_lock_the_staff_account(staff, split, settings):
    # given the public host flooded with wrong passwords for a staff email
    settings.BUFFET_LOGIN_ADDRESS_FAILURE_LIMIT = 1000
    for _ in range(settings.BUFFET_LOGIN_FAILURE_LIMIT + 2):
        assert token_request(PUBLIC, staff.email, "guess").status_code in (401, 429)
    # then staff still log in on the provider's face
    response = token_request(PROVIDER, staff.email, STAFF_PASSWORD, otp=staff.code())
    assert response.status_code == 200


# --- a listener of its own -------------------------------------------------------------

def test_with_a_provider_port_the_host_alone_is_not_enough(staff, split):
    # given the provider's face on its own listener, port 8001
    split.BUFFET_PROVIDER_PORT = 8001
    token = staff.client._credentials["HTTP_AUTHORIZATION"]
    # a request with the provider's Host header but on the public listener finds nothing
    client = on(PROVIDER, HTTP_AUTHORIZATION=token)
    assert client.get("/api/v1/admin/stamps/", SERVER_PORT="8000").status_code == 404
    # the same on the provider's listener works
    assert client.get("/api/v1/admin/stamps/", SERVER_PORT="8001").status_code == 200


# --- nothing set ----------------------------------------------------------------------

def test_with_nothing_set_one_host_serves_both_faces(staff, signup):
    owner = signup()
    assert on(PUBLIC, staff.client).get("/api/v1/admin/stamps/").status_code == 200
    assert on(PUBLIC, owner.client).get("/api/v1/tenant/").status_code == 200
    assert web_login(staff.user).get("/admin/", HTTP_HOST=PUBLIC).status_code == 200
    assert Client().get("/admin/login/", HTTP_HOST=PUBLIC).status_code == 200
    assert User.objects.filter(email=staff.email, is_staff=True).exists()
