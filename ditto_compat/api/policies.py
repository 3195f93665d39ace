"""``/api/2/policies``: the Policies HTTP API of Ditto's OpenAPI (``basic-policy``, ``httpapi-concepts``).

One endpoint parses the raw path itself, as ``api/things.py`` does: policy ids contain ``:`` and arrive encoded
or not, and subject ids and resource keys contain ``:`` and ``/`` (the JS client sends
``.../resources/thing:/`` and ``.../subjects/nginx:observer-2`` unencoded), so everything after ``subjects/``
or ``resources/`` is one key. Each request becomes one :class:`PolicyCommand` for the :class:`PolicyService`;
the outcome becomes Ditto's status, headers and body. There is no ``PATCH`` anywhere under ``/policies``.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.api.context import AppContext
from ditto_compat.api.history import historical_point, history_service
from ditto_compat.api.http import (
    command_headers,
    correlation_id_of,
    ditto_endpoint,
    fields_param,
    header_or_param,
    path_segments,
    read_body,
    render_outcome,
    request_uri,
    within_timeout,
)
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.policy_commands import PolicyCommand, PolicyOutcome, parse_policy_view
from ditto_compat.domain.policy_resources import DELETABLE, POLICY, policy_resource_of
from ditto_compat.errors import (
    JsonInvalid,
    MethodNotAllowed,
    PolicyIdInvalid,
    PolicyIdNotSettable,
)
from ditto_compat.model.ids import DEFAULT_NAMESPACE, check_namespace, check_policy_id
from ditto_compat.model.jsonio import loads
from ditto_compat.model.pointer import MISSING

PREFIX = "/api/2/policies"
_METHOD_ACTIONS = {"GET": "retrieve", "PUT": "modify", "DELETE": "delete"}
TOKEN_ACTIONS = ("activateTokenIntegration", "deactivateTokenIntegration")


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _action_of(segments: list[str]) -> tuple[str | None, str] | None:
    """``(label or None, action)`` for ``actions/<action>`` and ``entries/<label>/actions/<action>``."""
    if len(segments) == 2 and segments[0] == "actions":
        return None, segments[1]
    if len(segments) == 4 and segments[0] == "entries" and segments[2] == "actions":
        return segments[1], segments[3]
    return None


@ditto_endpoint
async def policies_endpoint(request: Request) -> Response:
    ctx = _ctx(request)
    correlation_id = correlation_id_of(request)
    auth = ctx.authenticator.authenticate(request.headers, request.query_params)
    policy_id, segments = path_segments(request, PREFIX)
    if policy_id is None:
        if request.method == "POST":
            return await _post_policy(request, ctx, auth, correlation_id)
        raise MethodNotAllowed(f"The method '{request.method}' is not allowed on '/policies'.")
    check_policy_id(policy_id)
    action_path = _action_of(segments)
    if action_path is not None and action_path[1] in TOKEN_ACTIONS:
        if request.method != "POST":
            raise MethodNotAllowed(f"The method '{request.method}' is not allowed on a policy action.")
        await ctx.policies.run_action(policy_id, action_path[0], action_path[1], auth)  # always raises
    resource = policy_resource_of(segments)
    action = _METHOD_ACTIONS.get(request.method)
    if action is None or (action == "delete" and resource.kind not in DELETABLE):
        raise MethodNotAllowed(f"The method '{request.method}' is not allowed on this Policy resource.")
    headers = command_headers(request, correlation_id)
    value: Any = MISSING
    if action == "modify":
        raw = await read_body(request)
        if not raw.strip():
            raise JsonInvalid("The request body must not be empty.")
        value = loads(raw)
    resolved = parse_policy_view(
        header_or_param(request, "policy-view") or request.query_params.get("policy-view")
    )
    cmd = PolicyCommand(action, policy_id, resource, value, headers, fields_param(request), resolved)
    point = historical_point(request) if action == "retrieve" else None
    if point is not None:
        history = history_service(ctx).policy_at(cmd, auth, point)
        outcome = await within_timeout(history, headers.timeout_s, cmd.type)
    else:
        outcome = await _dispatch(ctx, cmd, auth)
    return render_outcome(outcome, cmd.headers, correlation_id, request_uri(request))


async def _post_policy(request: Request, ctx: AppContext, auth: AuthContext, correlation_id: str) -> Response:
    """``POST /policies`` (served by Ditto's gateway, absent from the OpenAPI): a new policy with a generated
    id in ``namespace`` (or the default namespace); the body must not name an id."""
    namespace = request.query_params.get("namespace")
    if namespace is not None:
        check_namespace(namespace, PolicyIdInvalid)
    raw = await read_body(request)
    body = loads(raw) if raw.strip() else {}
    if isinstance(body, dict) and "policyId" in body:
        raise PolicyIdNotSettable(
            "It is not allowed to provide a Policy ID in the request body for method POST.",
            "To provide a Policy ID, use the method PUT instead of POST.",
        )
    policy_id = f"{DEFAULT_NAMESPACE if namespace is None else namespace}:{uuid.uuid4()}"
    cmd = PolicyCommand("create", policy_id, POLICY, body, command_headers(request, correlation_id))
    outcome = await _dispatch(ctx, cmd, auth)
    location = f"{request_uri(request).rstrip('/')}/{policy_id}"
    return render_outcome(outcome, cmd.headers, correlation_id, location)


async def _dispatch(ctx: AppContext, cmd: PolicyCommand, auth: AuthContext) -> PolicyOutcome:
    return await within_timeout(ctx.policies.handle(cmd, auth), cmd.headers.timeout_s, cmd.type)
