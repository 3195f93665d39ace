"""``ditto-compat policies get|put|delete`` (Ditto's ``/api/2/policies``)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ditto_compat.client.api import DittoApi, entity_path
from ditto_compat.client.arguments import add_body_arguments, body_of
from ditto_compat.client.output import Result
from ditto_compat.client.runner import Action, command_group
from ditto_compat.client.tables import policy_table


def _target(args: argparse.Namespace) -> str:
    path = (args.path or "").strip("/")
    return f"{args.policy_id}/{path}" if path else args.policy_id


def _table_for(body: Any) -> Any:
    """A policy (or an answer shaped like one) as a table of its entries; anything else as JSON."""
    if isinstance(body, Mapping) and isinstance(body.get("entries"), Mapping):
        return lambda: policy_table(body)
    return None


def get_policy(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    params = {"fields": args.fields} if args.fields else {}
    body = api.get(entity_path("policies", args.policy_id, args.path), params).body
    return Result(body, _table_for(body))


def put_policy(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    response = api.put(entity_path("policies", args.policy_id, args.path), body_of(args))
    verb = "created" if response.status == 201 else "modified"
    return Result(response.body, _table_for(response.body), f"{verb} {_target(args)}")


def delete_policy(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    api.delete(entity_path("policies", args.policy_id, args.path))
    return Result(None, None, f"deleted {_target(args)}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group_verb = command_group(sub, "policies", "read, write and delete policies", devops=False)

    def verb(name: str, help_text: str, action: Action, path_help: str) -> argparse.ArgumentParser:
        parser = group_verb(name, help_text, action)
        parser.add_argument("policy_id", metavar="POLICY_ID", help="e.g. org.acme:sensors")
        parser.add_argument("--path", help=f"{path_help} a part of the policy, e.g. entries/owner")
        return parser

    get = verb("get", "read a policy or a part of it", get_policy, "read only")
    get.add_argument("--fields", help="Ditto's fields selector, e.g. policyId,entries/owner")
    put = verb("put", "create or replace a policy (or a part of it)", put_policy, "replace only")
    add_body_arguments(put)
    verb("delete", "delete a policy (or a part of it)", delete_policy, "delete only")
