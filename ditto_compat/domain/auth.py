"""Who is asking: the authorization subjects of a request (``basic-auth``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuthContext:
    """Subjects such as ``nginx:ditto``; the first is the default subject (``whoami``, default policies)."""

    subjects: tuple[str, ...]

    @property
    def default_subject(self) -> str:
        return self.subjects[0]

    def to_whoami(self) -> dict[str, object]:
        return {"defaultSubject": self.default_subject, "subjects": list(self.subjects)}
