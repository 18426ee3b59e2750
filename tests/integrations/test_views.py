"""The MIS data page: a school admin uploads a CTF and sees the run and what it rejected."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from attendwise.tenants.models import Organisation
from tests.conftest import csrf_token
from tests.integrations import ctf_generator as gen
from tests.integrations.test_import import pupils


def upload(client: FlaskClient, data: bytes, name: str = "school.xml") -> Any:
    token = csrf_token(client, "/integrations")
    return client.post(
        "/integrations/ctf",
        data={"csrf_token": token, "ctf_file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_a_school_admin_uploads_a_ctf_and_sees_what_was_rejected(
    client: FlaskClient,
    login: Callable[..., Any],
    make_school: Callable[..., Organisation],
    make_user: Callable[..., Any],
) -> None:
    school = make_school()
    login(make_user(school, "school_admin"))
    made = pupils(3, seed=30)
    made[2].contacts[0].surname = made[2].contacts[0].forename = None

    sent = upload(client, gen.to_bytes(gen.build(made)))

    assert sent.status_code == 303
    page = client.get(sent.headers["Location"])
    text = page.get_data(as_text=True)
    people = {(c.forename, c.surname) for p in made for c in p.contacts if c.surname}
    records = len(made) + len(people) + sum(len(p.marks()) for p in made)
    assert page.status_code == 200
    assert f"{records} created" in text
    assert "1 record(s) rejected" in text
    assert "succeeded" in text
    assert "CTfile/CTFpupilData/Pupil[3]/Contacts/Contact[1]" in text
    assert "the contact has no name" in text
    assert "school.xml" in text


def test_no_file_or_a_hostile_file_is_refused_with_a_reason(
    client: FlaskClient,
    login: Callable[..., Any],
    make_school: Callable[..., Organisation],
    make_user: Callable[..., Any],
) -> None:
    school = make_school()
    login(make_user(school, "school_admin"))
    token = csrf_token(client, "/integrations")

    empty = client.post("/integrations/ctf", data={"csrf_token": token}, content_type="multipart/form-data")
    bomb = upload(
        client,
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaa">]><CTfile><Header><CTFversion>25.0'
        b"</CTFversion></Header></CTfile>",
    )

    assert empty.status_code == 400
    assert "Choose a CTF file" in empty.get_data(as_text=True)
    assert bomb.status_code == 303
    refused = client.get(bomb.headers["Location"]).get_data(as_text=True)
    assert "it declares a DTD or entities" in refused


def test_another_schools_run_is_not_found_and_other_roles_are_forbidden(
    client: FlaskClient,
    login: Callable[..., Any],
    make_school: Callable[..., Organisation],
    make_user: Callable[..., Any],
) -> None:
    mine, theirs = make_school(), make_school()
    login(make_user(theirs, "school_admin"))
    their_run = upload(client, gen.to_bytes(gen.build(pupils(1, seed=31)))).headers["Location"]
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/integrations")})

    login(make_user(mine, "school_admin"))
    assert client.get(their_run).status_code == 404
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/integrations")})

    login(make_user(mine, "attendance_officer"))
    assert client.get("/integrations").status_code == 403
