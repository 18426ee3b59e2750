"""Changing a school's policy: start from a preset, save drafts, publish versions (flush, never commit).

Nothing invalid is ever stored: a draft is saved only when its document validates, and the
errors come back located, as ``attendwise policy validate`` prints them. Published versions
never change; the policy in effect on a day is the latest published version whose
``effective_from`` is on or before it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.platform.db import utcnow
from attendwise.policies import document, simulate
from attendwise.policies.document import Policy, PolicyError
from attendwise.policies.models import PolicyVersion, SchoolPolicy


class PolicyEditError(ValueError):
    """A change that was refused; ``errors`` are located document errors when there are any."""

    def __init__(self, message: str, errors: Sequence[PolicyError] = ()) -> None:
        self.errors = list(errors)
        super().__init__("\n".join([message, *(str(e) for e in self.errors)]))


_VERSION_LINE = re.compile(r"^version:[ \t]*(?P<rest>.*)$", re.MULTILINE)


def set_version(text: str, number: int, effective_from: dt.date) -> str:
    """``text`` with its top-level ``version`` block's number and effective date replaced."""
    match = _VERSION_LINE.search(text)
    if match is None:
        raise PolicyEditError("the document has no top-level `version` block")
    rest = match.group("rest")
    if rest.startswith("{"):
        flow = re.sub(r"(number:\s*)\d+", rf"\g<1>{number}", rest, count=1)
        flow = re.sub(r"(effective_from:\s*)[0-9-]+", rf"\g<1>{effective_from.isoformat()}", flow, count=1)
        return text[: match.start("rest")] + flow + text[match.end("rest") :]
    lines = text[match.end() + 1 :].split("\n")
    out = []
    for i, line in enumerate(lines):
        if line and not line[0].isspace() and not line.startswith("#"):
            out.extend(lines[i:])
            break
        renumbered = re.sub(r"^(\s+number:\s*)\d+", rf"\g<1>{number}", line)
        out.append(
            re.sub(r"^(\s+effective_from:\s*)[0-9-]+", rf"\g<1>{effective_from.isoformat()}", renumbered)
        )
    return text[: match.end() + 1] + "\n".join(out)


def _compile_one(text: str) -> Policy:
    result = document.parse(text)
    if result.errors:
        raise PolicyEditError("the policy has errors", result.errors)
    if len(result.policies) != 1:
        raise PolicyEditError("a draft holds exactly one version: remove the other `---` documents")
    return result.policies[0]


def get_policy(session: Session) -> SchoolPolicy | None:
    """The current school's policy (the tenant context picks the school)."""
    return session.scalars(select(SchoolPolicy)).first()


def create_from_preset(
    session: Session, *, preset: str, effective_from: dt.date, author_id: int | None = None
) -> SchoolPolicy:
    """Start the current school's policy from a preset: a draft of its latest version."""
    if get_policy(session) is not None:
        raise PolicyEditError("this school already has a policy; edit it or start a new version")
    if preset not in simulate.preset_names():
        raise PolicyEditError(f"there is no preset {preset!r}; presets: {', '.join(simulate.preset_names())}")
    latest = document.load(simulate.preset_text(preset))[-1]
    text = set_version(latest.text, 1, effective_from)
    compiled = _compile_one(text)
    policy = SchoolPolicy(name=compiled.name, document_id=compiled.id, preset=preset)
    policy.versions.append(
        PolicyVersion(number=1, effective_from=compiled.effective_from, yaml_text=text, author_id=author_id)
    )
    session.add(policy)
    session.flush()
    return policy


def draft(policy: SchoolPolicy) -> PolicyVersion | None:
    return next((v for v in policy.versions if not v.published), None)


def published(policy: SchoolPolicy) -> list[PolicyVersion]:
    return [v for v in policy.versions if v.published]


def save_draft(
    session: Session, policy: SchoolPolicy, text: str, *, author_id: int | None = None
) -> PolicyVersion:
    """Validate ``text`` and store it as the draft; refused with every error, storing nothing."""
    compiled = _compile_one(text)
    if compiled.id != policy.document_id:
        raise PolicyEditError(f"the document's `id` must stay '{policy.document_id}', not '{compiled.id}'")
    last = published(policy)[-1] if published(policy) else None
    if last is not None and compiled.version <= last.number:
        raise PolicyEditError(
            f"a new version must be numbered above {last.number}, the latest published version"
        )
    version = draft(policy)
    if version is None:
        version = PolicyVersion(
            number=compiled.version, effective_from=compiled.effective_from, yaml_text=text
        )
        policy.versions.append(version)
    version.number = compiled.version
    version.effective_from = compiled.effective_from
    version.yaml_text = text
    version.author_id = author_id
    policy.name = compiled.name
    session.flush()
    return version


def start_new_version(
    session: Session, policy: SchoolPolicy, *, effective_from: dt.date, author_id: int | None = None
) -> PolicyVersion:
    """A draft copied from the latest published version, numbered next, taking effect on a date."""
    if draft(policy) is not None:
        raise PolicyEditError("there is already a draft; publish or edit it")
    versions = published(policy)
    if not versions:
        raise PolicyEditError("nothing is published yet; edit the draft")
    text = set_version(versions[-1].yaml_text, versions[-1].number + 1, effective_from)
    return save_draft(session, policy, text, author_id=author_id)


def publish(session: Session, policy: SchoolPolicy, *, by_user_id: int | None = None) -> PolicyVersion:
    """Publish the draft: from its effective date the engine uses it."""
    version = draft(policy)
    if version is None:
        raise PolicyEditError("there is no draft to publish")
    compiled = _compile_one(version.yaml_text)
    versions = published(policy)
    if versions and compiled.effective_from <= versions[-1].effective_from:
        raise PolicyEditError(
            f"version {compiled.version} must take effect after version {versions[-1].number} "
            f"({versions[-1].effective_from.isoformat()})"
        )
    version.published = True
    version.published_at = utcnow()
    version.published_by_id = by_user_id
    session.flush()
    return version


def compiled_versions(policy: SchoolPolicy) -> list[Policy]:
    """The published versions, compiled, oldest first."""
    return [_compile_one(v.yaml_text) for v in published(policy)]


def policy_on(policy: SchoolPolicy, day: dt.date) -> Policy | None:
    """The published version in effect on ``day`` (``None`` before the first takes effect)."""
    effective = [p for p in compiled_versions(policy) if p.effective_from <= day]
    return effective[-1] if effective else None
