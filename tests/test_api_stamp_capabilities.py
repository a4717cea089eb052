"""A stamp's capabilities in the provider API, and the DR add-on refused where a stamp
cannot replicate: the provider is told why (400), never a failed job later."""

from conftest import unique

CAPACITY = {"vcpus": 16, "memory_mb": 32768, "storage_gb": 500, "vms": 20}


def libvirt_cloud(catalog):
    post = catalog["post"]
    stamp = post("stamps", {"name": unique("kvm-"), "region": "west", "driver": "libvirt",
                            "endpoint": "test:///default"})
    return stamp, post("clouds", {"name": unique("kvm-cloud-"), "stamp": stamp["id"],
                                  "capacity": CAPACITY})


def test_a_stamp_says_what_its_driver_can_do(staff, catalog):
    stamp, _cloud = libvirt_cloud(catalog)
    assert stamp["capabilities"] == []
    listed = {s["name"]: s["capabilities"]
              for s in staff.get("/api/v1/admin/stamps/").json()["results"]}
    assert listed[catalog["stamp_a"]["name"]] == [
        "firewall", "gateways", "guest-files", "nat", "replication", "usage-history"]
    assert listed[stamp["name"]] == []


def test_a_dr_addon_cannot_recover_to_a_stamp_without_replication(staff, catalog):
    # given a cloud on a libvirt stamp
    stamp, cloud = libvirt_cloud(catalog)
    # when the provider makes it a DR add-on's recovery cloud
    response = staff.post("/api/v1/admin/addons/", {
        "name": unique("DR to KVM "), "kind": "dr", "recovery_cloud": cloud["id"]},
        format="json")
    # then it is refused, saying why
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert f"Stamp '{stamp['name']}' (libvirt) cannot replicate VMs" in body["detail"]
    assert "has no replication" in body["errors"]["recovery_cloud"][0]


def test_an_existing_dr_addon_cannot_move_its_recovery_to_such_a_stamp(staff, catalog):
    _stamp, cloud = libvirt_cloud(catalog)
    response = staff.patch(f"/api/v1/admin/addons/{catalog['dr']['id']}/",
                           {"recovery_cloud": cloud["id"]}, format="json")
    assert response.status_code == 400
    assert "recovery_cloud" in response.json()["errors"]
    dr = staff.get(f"/api/v1/admin/addons/{catalog['dr']['id']}/").json()
    assert dr["recovery_cloud"] == catalog["cloud_b"]["id"]


def test_a_plan_on_a_stamp_without_replication_offers_no_dr(staff, catalog):
    # given a plan on a libvirt cloud, and a DR add-on recovering elsewhere
    _stamp, cloud = libvirt_cloud(catalog)
    response = staff.post("/api/v1/admin/plans/", {
        "name": unique("KVM "), "state": "public", "cloud": cloud["id"],
        "addons": [catalog["dr"]["id"], catalog["extra"]["id"]]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "cannot replicate" in body["detail"]
    assert body["errors"]["addons"] == [
        f"'{catalog['dr']['name']}' needs replication from the plan's stamp."]
    # while the same plan with a quota add-on only is fine
    response = staff.post("/api/v1/admin/plans/", {
        "name": unique("KVM "), "state": "public", "cloud": cloud["id"],
        "addons": [catalog["extra"]["id"]]}, format="json")
    assert response.status_code == 201, response.content
