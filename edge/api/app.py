"""A Starlette app answering Cloudflare's v4 API for the BYO-CA endpoints.

Every request becomes one control-plane command submitted to the ControlPlane task (so a change
reaches the edge as a snapshot, like any other), and every answer is Cloudflare's envelope:
`{success, errors: [{code, message}], messages, result[, result_info]}`. The token is checked on
every route; `private_key` is never stored, returned or logged.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edge.control import commands as c
from edge.control import errors as e
from edge.control.errors import ApiError
from edge.control.plane import ControlPlane
from edge.control.records import ClientCertificateStatus, Rule, ZoneSettings

MAX_BODY = 1024 * 1024
SETTLE_TIMEOUT = 5.0  # seconds an answer waits for the edge to serve the change
PHASE = "http_request_firewall_custom"
CLIENT_CERT_HEADERS = "add_client_certificate_headers"  # the Managed Transform edge models
NOT_FOUND_CODES = {e.ACCOUNT_NOT_FOUND, e.ZONE_NOT_FOUND, e.CERTIFICATE_NOT_FOUND,
                   e.CLIENT_CERTIFICATE_NOT_FOUND}
AUTH_MISSING, AUTH_FAILED, ROUTE_UNKNOWN, METHOD_NOT_ALLOWED, BODY_TOO_LARGE = (
    9106, 10000, 7003, 7001, 1455,
)


def envelope(result: Any = None, *, errors: list[dict] | None = None, status: int = 200,
             result_info: dict | None = None) -> JSONResponse:
    body = {"success": not errors, "errors": errors or [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return JSONResponse(body, status_code=status)


def failure(code: int, message: str, status: int) -> JSONResponse:
    return envelope(errors=[{"code": code, "message": message}], status=status)


def listing(request: Request, items: list) -> JSONResponse:
    """One page of `items` (query `page`, `per_page`), as Cloudflare pages its lists; a page
    past the end is empty, which is how SDKs know to stop."""
    try:
        page = max(int(request.query_params.get("page", 1)), 1)
        per_page = min(max(int(request.query_params.get("per_page", 20)), 1), 1000)
    except ValueError:
        raise _BadRequest("page and per_page: expected whole numbers") from None
    chunk = items[(page - 1) * per_page: page * per_page]
    info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items),
            "total_pages": max((len(items) + per_page - 1) // per_page, 1)}
    return envelope(chunk, result_info=info)


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: int = e.INVALID_REQUEST) -> None:
        super().__init__(message)
        self.status, self.code = status, code


async def _body(request: Request) -> dict:
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise _BadRequest(f"request body above {MAX_BODY} bytes", 413, BODY_TOO_LARGE)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise _BadRequest(f"request body above {MAX_BODY} bytes", 413, BODY_TOO_LARGE)
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _BadRequest("request body: expected a JSON object") from None
    if not isinstance(data, dict):
        raise _BadRequest("request body: expected a JSON object")
    return data


def _field(data: dict, name: str, kind: type, *, default: Any = ..., what: str = "") -> Any:
    value = data.get(name, default)
    if value is ...:
        raise _BadRequest(f"{name}: required")
    if value is not default and not (isinstance(value, kind) and not
                                     (kind is int and isinstance(value, bool))):
        raise _BadRequest(f"{name}: expected {what or kind.__name__}, got {value!r}")
    return value


def _rules(data: dict) -> list[Rule]:
    raw = _field(data, "rules", list, what="a list of rules")
    rules = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _BadRequest(f"rules[{index}]: expected an object")
        rules.append(Rule(
            expression=item.get("expression", ""),
            action=item.get("action", ""),
            description=item.get("description", "") or "",
            enabled=item.get("enabled", True),
        ))
    return rules


def _ruleset(zone_id: str, rules) -> dict:
    return {
        "id": f"{zone_id}-custom",
        "name": "default",
        "kind": "zone",
        "phase": PHASE,
        "rules": [{"id": f"{zone_id}-{i}", **rule.to_api()} for i, rule in enumerate(rules)],
    }


Handler = Callable[[Request, ControlPlane], Awaitable[JSONResponse]]


def build_app(plane: ControlPlane, tokens: frozenset[str], *,
              settle: Callable[[], Awaitable[None]] | None = None) -> Starlette:
    """The API app over `plane`, accepting `Authorization: Bearer <token>` for `tokens`.

    `settle` waits until the edge serves the plane's newest snapshot: a change is answered once
    the next connection will see it (within SETTLE_TIMEOUT), so a pipeline can test right away.
    """
    if not tokens or not all(tokens):
        raise ValueError("the API needs at least one non-empty token")

    def route(path: str, methods: list[str], handler: Handler) -> Route:
        async def endpoint(request: Request) -> JSONResponse:
            refused = _authenticate(request, tokens)
            if refused is not None:
                return refused
            try:
                answer = await handler(request, plane)
            except ApiError as err:
                status = 404 if err.code in NOT_FOUND_CODES else 400
                return failure(err.code, err.message, status)
            except _BadRequest as err:
                return failure(err.code, str(err), err.status)
            if settle is not None and request.method != "GET":
                with trio.move_on_after(SETTLE_TIMEOUT) as waiting:
                    await settle()
                if waiting.cancelled_caught:
                    return _noted(answer, NOT_YET_SERVED)
            return answer

        return Route("/client/v4" + path, endpoint, methods=methods)

    routes = [route(path, methods, handler) for path, methods, handler in _ROUTES]

    async def not_found(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return failure(METHOD_NOT_ALLOWED, f"{request.method} is not allowed here", 405)
        return failure(ROUTE_UNKNOWN, f"Could not route to {request.url.path}", 404)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        """A bug in a handler still answers with the envelope, never a bare 500 page."""
        return failure(e.INTERNAL_ERROR, f"internal error: {type(exc).__name__}", 500)

    return Starlette(routes=routes, exception_handlers={
        404: not_found, 405: not_found, Exception: internal,
    })


NOT_YET_SERVED = {
    "code": 1456,
    "message": f"accepted, but the edge did not confirm serving it within {SETTLE_TIMEOUT:.0f} s: "
               "connections may not see it yet",
}


def _noted(answer: JSONResponse, message: dict) -> JSONResponse:
    """The same answer with `message` among its envelope's `messages`."""
    body = json.loads(answer.body)
    body["messages"].append(message)
    return JSONResponse(body, status_code=answer.status_code)


def _authenticate(request: Request, tokens: frozenset[str]) -> JSONResponse | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return failure(AUTH_MISSING, "Missing Authorization: Bearer <API token>", 401)
    given = header[7:].strip().encode("utf-8", "surrogateescape")
    if not given or not any(hmac.compare_digest(given, token.encode()) for token in tokens):
        return failure(AUTH_FAILED, "Authentication error", 403)
    return None


# --- handlers -------------------------------------------------------------------------------


async def _accounts(request, plane):
    return listing(request, [a.to_api() for a in await plane.submit(c.ListAccounts())])


async def _zones(request, plane):
    name = request.query_params.get("name")
    return listing(request, [z.to_api() for z in await plane.submit(c.ListZones(name=name))])


async def _upload(request, plane):
    data = await _body(request)
    record = await plane.submit(c.UploadCaCertificate(
        account_id=request.path_params["account_id"],
        certificates=_field(data, "certificates", str, what="a PEM string"),
        ca=_field(data, "ca", bool, what="true or false"),
        name=_field(data, "name", str, default=""),
        private_key=None,  # write-only: accepted, never kept
    ))
    return envelope(record.to_api())


async def _list_uploads(request, plane):
    records = await plane.submit(c.ListCaCertificates(request.path_params["account_id"]))
    return listing(request, [r.to_api() for r in records])


async def _get_upload(request, plane):
    params = request.path_params
    return envelope((await plane.submit(
        c.GetCaCertificate(params["account_id"], params["certificate_id"]))).to_api())


async def _delete_upload(request, plane):
    params = request.path_params
    return envelope((await plane.submit(
        c.DeleteCaCertificate(params["account_id"], params["certificate_id"]))).to_api())


async def _upload_associations(request, plane):
    params = request.path_params
    found = await plane.submit(
        c.ListCaAssociations(params["account_id"], params["certificate_id"]))
    return listing(request, [a.to_api() for a in found])


async def _get_hostnames(request, plane):
    hostnames = await plane.submit(c.GetHostnameAssociations(
        request.path_params["zone_id"], request.query_params.get("mtls_certificate_id")))
    return envelope({"hostnames": list(hostnames)})


async def _put_hostnames(request, plane):
    data = await _body(request)
    hostnames = await plane.submit(c.PutHostnameAssociations(
        request.path_params["zone_id"],
        _field(data, "hostnames", list, default=[], what="a list of hostnames"),
        _field(data, "mtls_certificate_id", str, default=None),
    ))
    return envelope({"hostnames": list(hostnames)})


async def _create_client_certificate(request, plane):
    data = await _body(request)
    record = await plane.submit(c.CreateClientCertificate(
        request.path_params["zone_id"],
        _field(data, "csr", str, what="a PEM CSR"),
        _field(data, "validity_days", int, default=3650, what="a whole number"),
    ))
    return envelope(record.to_api())


async def _list_client_certificates(request, plane):
    status = request.query_params.get("status")
    try:
        wanted = None if status in (None, "all") else ClientCertificateStatus(status)
    except ValueError:
        raise _BadRequest(f"status: expected active, pending_revocation or revoked, "
                          f"got {status!r}") from None
    records = await plane.submit(c.ListClientCertificates(request.path_params["zone_id"], wanted))
    return listing(request, [r.to_api() for r in records])


async def _get_client_certificate(request, plane):
    params = request.path_params
    return envelope((await plane.submit(c.GetClientCertificate(
        params["zone_id"], params["client_certificate_id"]))).to_api())


async def _revoke_client_certificate(request, plane):
    params = request.path_params
    return envelope((await plane.submit(c.RevokeClientCertificate(
        params["zone_id"], params["client_certificate_id"]))).to_api())


async def _reactivate_client_certificate(request, plane):
    params = request.path_params
    data = await _body(request)
    if data.get("reactivate") is not True:
        raise _BadRequest('expected {"reactivate": true}')
    return envelope((await plane.submit(c.ReactivateClientCertificate(
        params["zone_id"], params["client_certificate_id"]))).to_api())


async def _get_rules(request, plane):
    zone_id = request.path_params["zone_id"]
    return envelope(_ruleset(zone_id, await plane.submit(c.GetCustomRules(zone_id))))


async def _put_rules(request, plane):
    zone_id = request.path_params["zone_id"]
    rules = await plane.submit(c.PutCustomRules(zone_id, _rules(await _body(request))))
    return envelope(_ruleset(zone_id, rules))


def _managed_headers(settings: ZoneSettings) -> dict:
    return {
        "managed_request_headers": [{"id": CLIENT_CERT_HEADERS, "has_conflict": False,
                                     "enabled": settings.forwarding.managed_transform}],
        "managed_response_headers": [],
    }


def _client_cert_toggle(data: dict) -> bool | None:
    """The `enabled` asked for add_client_certificate_headers (None: not mentioned); any other
    Managed Transform is refused, since edge would silently not apply it."""
    toggle = None
    for name in ("managed_request_headers", "managed_response_headers"):
        items = _field(data, name, list, default=[], what="a list of Managed Transforms")
        for index, item in enumerate(items):
            where = f"{name}[{index}]"
            if not isinstance(item, dict) or not isinstance(item.get("enabled"), bool):
                raise _BadRequest(f'{where}: expected {{"id": ..., "enabled": true|false}}')
            if name == "managed_request_headers" and item.get("id") == CLIENT_CERT_HEADERS:
                toggle = item["enabled"]
                continue
            raise _BadRequest(f"{where}.id: edge models only the request header transform "
                              f"{CLIENT_CERT_HEADERS!r}, got {item.get('id')!r}")
    return toggle


async def _get_managed_headers(request, plane):
    zone_id = request.path_params["zone_id"]
    return envelope(_managed_headers(await plane.submit(c.GetZoneSettings(zone_id))))


async def _patch_managed_headers(request, plane):
    zone_id = request.path_params["zone_id"]
    toggle = _client_cert_toggle(await _body(request))
    return envelope(_managed_headers(await plane.submit(
        c.SetForwarding(zone_id, managed_transform=toggle))))


_MTLS = "/accounts/{account_id}/mtls_certificates"
_CLIENT = "/zones/{zone_id}/client_certificates"
_ROUTES: list[tuple[str, list[str], Handler]] = [
    ("/accounts", ["GET"], _accounts),
    ("/zones", ["GET"], _zones),
    (_MTLS, ["POST"], _upload),
    (_MTLS, ["GET"], _list_uploads),
    (_MTLS + "/{certificate_id}", ["GET"], _get_upload),
    (_MTLS + "/{certificate_id}", ["DELETE"], _delete_upload),
    (_MTLS + "/{certificate_id}/associations", ["GET"], _upload_associations),
    ("/zones/{zone_id}/certificate_authorities/hostname_associations", ["GET"], _get_hostnames),
    ("/zones/{zone_id}/certificate_authorities/hostname_associations", ["PUT"], _put_hostnames),
    (_CLIENT, ["POST"], _create_client_certificate),
    (_CLIENT, ["GET"], _list_client_certificates),
    (_CLIENT + "/{client_certificate_id}", ["GET"], _get_client_certificate),
    (_CLIENT + "/{client_certificate_id}", ["DELETE"], _revoke_client_certificate),
    (_CLIENT + "/{client_certificate_id}", ["PATCH"], _reactivate_client_certificate),
    (f"/zones/{{zone_id}}/rulesets/phases/{PHASE}/entrypoint", ["GET"], _get_rules),
    (f"/zones/{{zone_id}}/rulesets/phases/{PHASE}/entrypoint", ["PUT"], _put_rules),
    ("/zones/{zone_id}/managed_headers", ["GET"], _get_managed_headers),
    ("/zones/{zone_id}/managed_headers", ["PATCH"], _patch_managed_headers),
]
