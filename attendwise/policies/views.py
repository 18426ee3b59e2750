"""Pages: the school's policy as a ladder, the editor with live validation, versions and their diffs."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for

from attendwise.platform import audit
from attendwise.platform.auth import current_principal, require_perm
from attendwise.platform.db import db
from attendwise.platform.web import register_nav
from attendwise.policies import document, queries, services, simulate, versions
from attendwise.policies.document import Policy, Stage
from attendwise.policies.models import PolicyVersion, SchoolPolicy
from attendwise.tenants.roles import Perm

bp = Blueprint("policies", __name__, template_folder="templates", url_prefix="/policy")


def _can_edit() -> bool:
    principal = current_principal()
    return principal is not None and principal.can(Perm.POLICY_EDIT)


def _user_id() -> int | None:
    principal = current_principal()
    return principal.user.id if principal is not None and principal.user is not None else None


def _today() -> dt.date:
    """Today in the school's time zone."""
    principal = current_principal()
    zone = principal.organisation.timezone if principal and principal.organisation else "Europe/London"
    return dt.datetime.now(ZoneInfo(zone)).date()


def _policy_or_404() -> SchoolPolicy:
    policy = services.get_policy(db.session())
    if policy is None:
        abort(404)
    return policy


def _date(value: str | None, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if value else default
    except ValueError:
        return default


def ladder_rows(policy: Policy) -> list[dict[str, Any]]:
    """The stages as table rows in plain words: how a pupil arrives, what happens, how they leave."""
    rows = []
    for stage in policy.stages:
        rows.append(
            {
                "number": stage.number,
                "name": stage.name,
                "entry": versions.entry_words(stage),
                "on_entry": [a.summary() for a in stage.on_entry],
                "kinds": [a.kind.replace("_", " ") for a in stage.on_entry],
                "while": [
                    f"Every {r.every.replace('_', ' ')}: " + "; ".join(a.summary() for a in r.actions)
                    for r in stage.while_in_stage
                ],
                "leave": [
                    f"To stage {lv.to} when {versions.words(lv.when)} ({lv.reason})" for lv in stage.leave
                ],
                "monitoring": stage.monitoring,
                "sign_off": _sign_off(stage),
                "support_first": stage.support_first,
            }
        )
    return rows


def _sign_off(stage: Stage) -> str | None:
    for action in stage.on_entry:
        if action.sign_off:
            return action.sign_off.replace("_", " ")
    return stage.sign_off.replace("_", " ") if stage.sign_off else None


def _compiled(version: PolicyVersion) -> Policy:
    return document.load(version.yaml_text)[0]


@bp.get("")
@require_perm(Perm.POLICY_READ)
def overview() -> Any:
    policy = services.get_policy(db.session())
    if policy is None:
        presets = [(name, simulate.load_preset(name)[0][-1]) for name in simulate.preset_names()]
        return render_template("policies/start.html", presets=presets, can_edit=_can_edit(), today=_today())
    today = _today()
    shown = services.policy_on(policy, today)
    showing = "in effect today"
    if shown is None:
        upcoming = services.published(policy)
        version = upcoming[0] if upcoming else services.draft(policy)
        shown = _compiled(version) if version is not None else None
        showing = "published, not yet in effect" if upcoming else "draft, not yet published"
    return render_template(
        "policies/ladder.html",
        policy=policy,
        shown=shown,
        showing=showing,
        rows=ladder_rows(shown) if shown else [],
        rules=shown.rules if shown else (),
        history=list(reversed(policy.versions)),
        can_edit=_can_edit(),
    )


@bp.post("/start")
@require_perm(Perm.POLICY_EDIT)
def start() -> Any:
    preset = request.form.get("preset", "")
    effective = _date(request.form.get("effective_from"), _today())
    try:
        services.create_from_preset(
            db.session(), preset=preset, effective_from=effective, author_id=_user_id()
        )
    except services.PolicyEditError as exc:
        flash(str(exc).splitlines()[0], "error")
        return redirect(url_for(".overview"))
    flash("Your policy has been started from the preset. Review it, then publish it.", "success")
    return redirect(url_for(".edit"))


@bp.get("/edit")
@require_perm(Perm.POLICY_EDIT)
def edit() -> Any:
    policy = _policy_or_404()
    version = services.draft(policy)
    return render_template(
        "policies/edit.html",
        policy=policy,
        draft=version,
        text=version.yaml_text if version else "",
        errors=[],
    )


@bp.post("/check")
@require_perm(Perm.POLICY_EDIT)
def check() -> Any:
    """The editor's live validation (htmx): every error with its line and column, or none."""
    result = document.parse(request.form.get("text", ""))
    return render_template("policies/_check.html", errors=result.errors, policies=result.policies)


@bp.post("/edit")
@require_perm(Perm.POLICY_EDIT)
def save() -> Any:
    policy = _policy_or_404()
    text = request.form.get("text", "")
    try:
        services.save_draft(db.session(), policy, text, author_id=_user_id())
    except services.PolicyEditError as exc:
        messages = [str(e) for e in exc.errors] or [str(exc)]
        return render_template(
            "policies/edit.html",
            policy=policy,
            draft=services.draft(policy),
            text=text,
            errors=messages,
        ), 400
    flash("The draft has been saved.", "success")
    return redirect(url_for(".edit"))


@bp.post("/new-version")
@require_perm(Perm.POLICY_EDIT)
def new_version() -> Any:
    policy = _policy_or_404()
    effective = _date(request.form.get("effective_from"), _today())
    try:
        services.start_new_version(db.session(), policy, effective_from=effective, author_id=_user_id())
    except services.PolicyEditError as exc:
        flash(str(exc).splitlines()[0], "error")
        return redirect(url_for(".overview"))
    return redirect(url_for(".edit"))


@bp.post("/publish")
@require_perm(Perm.POLICY_EDIT)
def publish() -> Any:
    policy = _policy_or_404()
    try:
        version = services.publish(db.session(), policy, by_user_id=_user_id())
    except services.PolicyEditError as exc:
        flash(str(exc).splitlines()[0], "error")
        return redirect(url_for(".edit"))
    flash(
        f"Version {version.number} is published and takes effect on {version.effective_from:%-d %B %Y}.",
        "success",
    )
    return redirect(url_for(".overview"))


@bp.get("/versions/<int:number>")
@require_perm(Perm.POLICY_READ)
def version(number: int) -> Any:
    policy = _policy_or_404()
    found = next((v for v in policy.versions if v.number == number), None)
    if found is None:
        abort(404)
    compiled = _compiled(found)
    earlier = [v for v in policy.versions if v.number < number]
    changes = versions.diff(_compiled(earlier[-1]), compiled) if earlier else []
    return render_template(
        "policies/version.html",
        policy=policy,
        version=found,
        shown=compiled,
        rows=ladder_rows(compiled),
        previous=earlier[-1] if earlier else None,
        changes=changes,
    )


@bp.get("/dry-run")
@require_perm(Perm.POLICY_EDIT, Perm.PUPILS_READ)
def dry_run() -> Any:
    """What a version (the draft unless another is asked for) would do on the school's data today."""
    policy = _policy_or_404()
    number = request.args.get("version", type=int)
    version = (
        next((v for v in policy.versions if v.number == number), None)
        if number is not None
        else services.draft(policy) or policy.versions[-1]
    )
    if version is None:
        abort(404)
    compiled = _compiled(version)
    report = queries.dry_run(db.session(), policy.org_id, compiled, _today())
    changes = report["week"]["stage_changes"] if report["week"] else []
    audit.record(
        db.session(),
        org_id=policy.org_id,
        action="pupils.list",
        object_type="pupils",
        detail={"via": "policy dry run", "pupil_ids": [c["pupil_id"] for c in changes]},
    )
    return render_template(
        "policies/dry_run.html", policy=policy, version=version, report=report, changes=changes
    )


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    register_nav(endpoint="policies.overview", label="Policy", perm=Perm.POLICY_READ, order=30)
