"""The insights API: the pages' figures as JSON, with the same scope and suppression, in OpenAPI."""

from __future__ import annotations

from tests.platform.account_fixtures import enrol_from_setup_page


def test_trust_comparison_matches_the_page_and_suppresses_small_schools(client, login, make_user, world):
    login(make_user(world.trust, "trust_leader"))
    body = client.get("/api/v1/insights/comparison?period=term").get_json()
    assert body["scope_kind"] == "trust"
    assert body["period"] == "term"
    by_name = {s["name"]: s for s in body["schools"]}
    assert set(by_name) == {"Big Primary", "Small Primary"}
    small = by_name["Small Primary"]["figures"]
    assert small["suppressed"] is True
    assert small["pupils"] is None
    assert small["attendance_pct"] is None
    assert small["possible_sessions"] is None
    big = by_name["Big Primary"]["figures"]
    assert big["pupils"] == 30
    assert 0 < big["attendance_pct"] < 100
    assert body["total"]["pupils"] == 34  # the total counts every pupil of the trust
    assert {g["key"] for g in body["groups"] if g["breakdown"] == "group"} >= {"fsm", "looked_after"}
    looked_after = next(g for g in body["groups"] if g["key"] == "looked_after")
    assert looked_after["figures"]["suppressed"] is True  # 2 pupils across the trust
    assert body["weeks"][0]["week_start"] <= body["weeks"][-1]["week_start"]
    assert any(n["measure"] == "persistent" and n["phase"] == "all" for n in body["national"])


def test_school_endpoint_follows_the_page_scope(client, login, make_user, world):
    login(make_user(world.trust, "trust_leader"))
    assert client.get(f"/api/v1/insights/schools/{world.big.id}").status_code == 200
    assert client.get(f"/api/v1/insights/schools/{world.solo.id}").status_code == 404
    assert client.get(f"/api/v1/insights/schools/{world.foreign.id}").status_code == 404
    assert client.get("/api/v1/insights/comparison?period=decade").status_code == 422


def test_school_sees_its_own_small_figures_unsuppressed(client, login, make_user, world):
    login(make_user(world.small, "school_admin"))
    body = client.get("/api/v1/insights/comparison").get_json()
    assert body["scope_kind"] == "school"
    assert body["suppressed_outside_school"] is False
    assert body["schools"][0]["figures"]["pupils"] == 4
    assert body["total"]["attendance_pct"] is not None


def test_la_comparison_covers_the_la_only(client, login, make_user, world):
    login(make_user(world.la, "la_admin"))
    enrol_from_setup_page(client, "/auth/mfa/setup")
    body = client.get("/api/v1/insights/comparison?period=last_year").get_json()
    assert {s["name"] for s in body["schools"]} == {"Big Primary", "Small Primary", "Solo Secondary"}
    assert body["total_last_year"] is None  # no comparison for the year before last
    assert client.get(f"/api/v1/insights/schools/{world.big.id}").status_code == 404


def test_the_endpoints_are_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in (
        "/api/v1/insights/comparison",
        "/api/v1/insights/schools/{school_id}",
        "/api/v1/insights/national",
    ):
        assert "insights:read" in spec["paths"][path]["get"]["description"]
