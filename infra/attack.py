#!/usr/bin/env python3
"""The attack suite over every route of openapi.yaml (run by infra/attack.sh).

Against a dev server started with a LOCAL_JWT_SECRET this script knows (env
ATTACK_JWT_SECRET), so it mints HS256 dashboard tokens for any tenant and role itself:

  part 1  tenants `acme` (the victim, A) and `rival` (the attacker, B) are set up as
          owners through the API: integrations (webhooks, telegram_bot, telegram_crm, email),
          an API key per scope, clients and dialogs (from inbound Telegram webhooks signed
          with the integration's own secret), a client, lead routings, a lead, 51 prompt
          versions (so history has a next page), a profile with a bot webhook, a catalog;
          A's ids, secrets, page cursors and unique strings are collected.
  part 2  every operation of openapi.yaml, with A's ids (and ids guessed by their format,
          and A's page cursors) in each id slot — path, query, body — one slot at a time,
          sent with B's owner token, each of B's API keys (and, on the public webhook
          routes, none or B's webhook secrets). A 2xx whose body holds A's data, or that
          wrote to A's resource, is a breach; any other 2xx for an id that is not B's is
          `suspect`; 2xx on B's own data is fine.
  part 3  bad dashboard tokens (alg none, a wrong key, expired, nbf ahead, claims missing
          or malformed, `acme#x`-style tenants) on every dashboard operation with A's ids:
          401 expected; roles an operation's x-roles excludes: 403 ROLE_REQUIRED; valid
          tokens of look-alike tenants (`ACME`, `acme_`, …): as in part 2.
  part 4  API keys: every key op with a key lacking its scope (403 INSUFFICIENT_SCOPE),
          keys on dashboard-only ops (401), a key as a Bearer token, altered keys, a
          revoked key and a key of a deleted tenant (401) — with controls that the keys
          work where they should.
  verify  A's state (integrations, keys, routings, prompt, profile, catalog, clients,
          leads and deliveries, dialogs and messages, logs) equals its snapshot after part 1.
  part 5  the dev server is stopped; every secret the suite used or received (JWT secret,
          tokens, raw API keys, configured and generated integration secrets) is searched
          raw, hex and base64 in the server's stdout/stderr and every file of DATA_DIR.

Nothing secret is printed: a hit names its kind and file; bodies are redacted.
Knobs: ATTACK_GUESSES (ids guessed per id, each way; default 2), ATTACK_SEED.
Exit status 1 on any breach, suspect 2xx, 5xx, wrong refusal, change of A, or secret hit.
"""

import argparse
import base64
import binascii
import copy
import hashlib
import hmac
import http.client
import json
import os
import random
import secrets
import signal
import sys
import time
import urllib.parse
from collections import Counter

import yaml

ULID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
HEX = "0123456789abcdef"
METHODS = ("get", "put", "post", "patch", "delete", "options", "head")
# The scope each API-key operation needs (openapi.yaml says it in prose only).
SCOPE_BY_PREFIX = (("/v1/bot/config", "config:read"), ("/v1/messages/", "messages:send"),
                   ("/v1/leads", "leads:write"), ("/v1/lead-routing/", "leads:write"))
SCOPES = ("config:read", "messages:send", "leads:write")
# The kind of id a path parameter `{id}` holds, by the path it sits under.
ID_KIND_BY_PREFIX = (("/v1/integrations/", "integration"), ("/v1/api-keys/", "api_key"),
                     ("/v1/clients/", "client"), ("/v1/inbox/dialogs/", "dialog"),
                     ("/v1/leads/", "lead"))
LOOKALIKE_TENANTS = ("ACME", "Acme", "acme_", "acme-", "acme0", "acm")


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---------------------------------------------------------------- secrets


class Secrets:
    """Every secret the suite used or received: never printed, searched for in part 5."""

    def __init__(self):
        self.kinds = {}

    def add(self, kind, value):
        if isinstance(value, str) and len(value) >= 12 and "••••" not in value:
            self.kinds.setdefault(value, kind)

    def redact(self, text):
        for value in sorted(self.kinds, key=len, reverse=True):
            if value in text:
                text = text.replace(value, f"«{self.kinds[value]}»")
        return text


SECRETS = Secrets()


def mint(secret, claims, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature}"


# ---------------------------------------------------------------- HTTP


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.text = raw.decode("utf-8", "replace")
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def code(self):
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"].get("code")
        return None


class Client:
    def __init__(self, base):
        parsed = urllib.parse.urlsplit(base)
        self.host, self.port = parsed.hostname, parsed.port
        self.conn = None
        self.sent = 0
        self.server_errors = []  # (label, Response) of every 5xx, whichever part sent it

    def send(self, method, target, body=None, headers=None, label=""):
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request(method, target, body=data, headers=headers)
                r = self.conn.getresponse()
                response = Response(r.status, dict(r.getheaders()), r.read())
                break
            except (http.client.HTTPException, OSError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        self.sent += 1
        if b'"key"' in response.raw and isinstance(response.json, dict) \
                and isinstance(response.json.get("key"), str):
            SECRETS.add("raw API key", response.json["key"])
        if response.status >= 500:
            self.server_errors.append((label or f"{method} {target}", response))
        return response


# ---------------------------------------------------------------- the document


class Op:
    def __init__(self, doc, path, method, spec, path_params):
        self.path, self.method, self.spec = path, method.upper(), spec
        self.id = spec.get("operationId") or f"{self.method} {path}"
        self.roles = spec.get("x-roles")
        security = spec.get("security", doc.get("security", []))
        names = {name for requirement in security for name in requirement}
        self.public = security == []
        self.dashboard = "dashboardJwt" in names
        self.api_key = "apiKey" in names
        params = {}
        for p in path_params + spec.get("parameters", []):
            p = resolve(doc, p)
            params[(p["name"], p["in"])] = p
        self.params = list(params.values())
        self.has_body = "requestBody" in spec
        self.scope = None
        if self.api_key:
            self.scope = next((s for prefix, s in SCOPE_BY_PREFIX if path.startswith(prefix)), None)

    def name(self):
        return f"{self.method} {self.path}"

    def path_params(self):
        return [p for p in self.params if p["in"] == "path"]

    def query_params(self):
        return [p for p in self.params if p["in"] == "query"]

    def enum(self, name):
        for p in self.params:
            if p["name"] == name:
                return resolve_schema(p.get("schema", {})).get("enum")
        return None


DOC = None


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def resolve_schema(schema):
    return resolve(DOC, schema)


def operations(doc):
    ops = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                ops.append(Op(doc, path, method, item[method], item.get("parameters", [])))
    # Deleting a tenant wipes it: last in every part.
    ops.sort(key=lambda op: op.id == "deleteTenant")
    return ops


def id_kind(op, name):
    if name == "integration_id":
        return "integration"
    if name == "id":
        for prefix, kind in ID_KIND_BY_PREFIX:
            if op.path.startswith(prefix):
                return kind
    if name in ("scope", "external_id"):
        return "routing"
    if name == "provider":
        return "provider"
    return "unknown"


# ---------------------------------------------------------------- tenants


class Tenant:
    def __init__(self, name, secret):
        self.name = name
        self.secret = secret
        self.token = self.mint_token("owner")
        self.ids = {k: [] for k in ("integration", "api_key", "client", "dialog", "lead")}
        self.integrations = {}  # provider -> id
        self.keys = {}  # scope -> raw key (A's and B's: one scope each)
        self.key_ids = {}
        self.markers = {}  # string -> what it is, for finding A's data in B's answers
        self.cursors = {}  # op id -> [cursor]
        self.routing = [("entities", "e1"), ("projects", "p1")]
        self.webhook_secrets = {}  # provider -> webhook secret
        self.chat_ids = []
        self.phone = "+79160000000"
        self.lead_body = {"name": "lead"}
        self.idempotency = {}  # op id -> (Idempotency-Key, path, body) the tenant sent
        self.harvest_on = False

    def mint_token(self, role, **claims):
        payload = {"tenant_id": self.name, "sub": f"attack-{role}", "role": role,
                   "exp": int(time.time()) + 3600}
        payload.update(claims)
        token = mint(self.secret, payload)
        SECRETS.add("dashboard token", token)
        SECRETS.add("dashboard token signature", token.rsplit(".", 1)[1])
        return token

    def first(self, kind):
        values = self.ids.get(kind) or []
        return values[0] if values else "x"

    def mark(self, value, what):
        if isinstance(value, str) and len(value) >= 16:
            self.markers.setdefault(value, what)

    def harvest(self, obj, where=""):
        """A's ids as its answers show them (every `id`, `*_id`, `*_ids` of 16+ chars)."""
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key == "tenant_id":
                    continue
                if key in ("id", "key") or key.endswith("_id") or key.endswith("_ids"):
                    for v in value if isinstance(value, list) else [value]:
                        self.mark(v, f"{self.name}'s {key}")
                self.harvest(value, key)
        elif isinstance(obj, list):
            for value in obj:
                self.harvest(value, where)


def harvest_secrets(registry, response_json):
    """Registers every credential of a /v1/bot/config answer (the fields that are secrets)."""
    for group in ("channels", "crm", "lead_targets"):
        for entry in (response_json or {}).get(group, []):
            secret_fields = registry.get(entry.get("provider"), set())
            for key, value in (entry.get("credentials") or {}).items():
                if key in secret_fields:
                    SECRETS.add(f"{entry['provider']} {key}", value)


class Setup:
    def __init__(self, client, secret):
        self.client = client
        self.secret = secret
        self.registry = {}
        self.failures = []

    def call(self, tenant, method, path, body=None, headers=None, key=None, expect=(200, 201)):
        h = dict(headers or {})
        if key:
            h["X-Api-Key"] = key
        else:
            h["Authorization"] = f"Bearer {tenant.token}"
        r = self.client.send(method, path, body, h, label=f"setup {tenant.name}: {method} {path}")
        if r.status not in expect:
            self.failures.append(f"{tenant.name}: {method} {path} -> {r.status} "
                                 f"{SECRETS.redact(r.text[:300])}")
        if tenant.harvest_on and r.json is not None:
            tenant.harvest(r.json)
        if isinstance(r.json, dict) and isinstance(r.json.get("key"), str):
            SECRETS.add("raw API key", r.json["key"])
        return r

    def tenant(self, name, rng, full):
        t = Tenant(name, self.secret)
        t.harvest_on = full
        tag = secrets.token_hex(4)
        r = self.client.send("GET", "/v1/registry", None, {"Authorization": f"Bearer {t.token}"})
        for meta in (r.json or {}).get("items", []):
            self.registry[meta["provider"]] = {f["key"] for f in meta["config_schema"]
                                               if f["type"] == "password"}
        hook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        bot_token = f"{rng.randint(10**8, 10**9)}:AA{secrets.token_urlsafe(30)}"
        crm_token = "crm_" + secrets.token_hex(24)
        smtp_password = "smtp-" + secrets.token_urlsafe(24)
        for kind, value in (("configured webhooks secret", hook_secret),
                            ("configured telegram bot token", bot_token),
                            ("configured telegram_crm api token", crm_token),
                            ("configured smtp password", smtp_password)):
            SECRETS.add(kind, value)
        connects = [
            # The victim's signing secret is configured, the attacker's generated by the server.
            {"provider": "webhooks", "name": f"{name} CRM hook",
             "config": dict({"url": f"https://crm.example.com/{name}-hook"},
                            **({"secret": hook_secret} if full else {}))},
            {"provider": "telegram_bot", "name": f"{name} bot", "config": {"bot_token": bot_token}},
            {"provider": "telegram_crm", "name": f"{name} user bot",
             "config": {"api_base": f"https://tg-crm.example.com/{name}", "api_token": crm_token,
                        "account_id": f"{name}-acct"}},
            {"provider": "email", "name": f"{name} mail",
             "config": {"recipients": f"sales@{name}.example.com", "smtp_username": name,
                        "smtp_password": smtp_password}},
        ]
        for body in connects:
            r = self.call(t, "POST", "/v1/integrations", body, expect=(201,))
            if r.status == 201:
                t.integrations[body["provider"]] = r.json["id"]
                t.ids["integration"].append(r.json["id"])
        for scope in SCOPES:
            r = self.call(t, "POST", "/v1/api-keys", {"name": f"{name} {scope}", "scopes": [scope]},
                          expect=(201,))
            if r.status == 201:
                t.keys[scope] = r.json["key"]
                t.key_ids[scope] = r.json["id"]
                t.ids["api_key"].append(r.json["id"])
        # A spare key first: the one an operation's own-tenant default names (the attacker's
        # DELETE /v1/api-keys/{id} revokes it, not a key the suite still uses).
        r = self.call(t, "POST", "/v1/api-keys", {"name": f"{name} spare", "scopes": ["config:read"]},
                      expect=(201,))
        if r.status == 201:
            t.ids["api_key"].insert(0, r.json["id"])
        r = self.call(t, "GET", "/v1/bot/config", key=t.keys.get("config:read"), expect=(200,))
        harvest_secrets(self.registry, r.json)
        for entry in (r.json or {}).get("channels", []):
            secret = (entry.get("credentials") or {}).get("webhook_secret")
            if secret:
                t.webhook_secrets[entry["provider"]] = secret
        # Inbound messages: two chats (two dialogs), the first one with two messages.
        tg = t.integrations.get("telegram_bot")
        base_chat = rng.randint(10**8, 10**9)
        t.chat_ids = [str(base_chat), str(base_chat + 1)]
        for n, chat in enumerate([t.chat_ids[0], t.chat_ids[0], t.chat_ids[1]]):
            update = telegram_update(int(chat), f"{name}-inbound-{tag}-{n}", rng)
            r = self.client.send("POST", f"/v1/webhooks/telegram_bot/{tg}", update,
                                 {"X-Telegram-Bot-Api-Secret-Token": t.webhook_secrets.get("telegram_bot", "")},
                                 label=f"setup {name}: inbound webhook")
            if r.status != 200:
                self.failures.append(f"{name}: inbound webhook -> {r.status} {r.text[:200]}")
        for _ in range(100):
            r = self.call(t, "GET", "/v1/inbox/dialogs", expect=(200,))
            if len((r.json or {}).get("items", [])) >= 2:
                break
            time.sleep(0.1)
        if len((r.json or {}).get("items", [])) != 2:
            self.failures.append(f"{name}: {len((r.json or {}).get('items', []))} dialogs, not 2")
        # The dialog with two messages first (its messages have a next page).
        dialogs = sorted((r.json or {}).get("items", []), key=lambda d: d["chat_id"] != t.chat_ids[0])
        for dialog in dialogs:
            t.ids["dialog"].append(dialog["id"])
            t.ids["client"].append(dialog["client_id"])
        if full:
            # A send (queued: Telegram is a closed port) and a reply, each with a key.
            send = {"client_id": t.ids["client"][0] if t.ids["client"] else "x",
                    "text": f"{name}-send-{tag}"}
            t.idempotency["sendTelegram"] = (f"idem-send-{name}-{tag}", "/v1/messages/telegram", send)
            self.call(t, "POST", "/v1/messages/telegram", send,
                      {"Idempotency-Key": t.idempotency["sendTelegram"][0]}, expect=(200, 202))
            reply = {"text": f"{name}-reply-{tag}"}
            reply_path = f"/v1/inbox/dialogs/{t.ids['dialog'][-1]}/reply"
            t.idempotency["replyToDialog"] = (f"idem-reply-{name}-{tag}", reply_path, reply)
            self.call(t, "POST", reply_path, reply,
                      {"Idempotency-Key": t.idempotency["replyToDialog"][0]}, expect=(202,))
            t.markers[f"{name}-send-{tag}"] = f"{name}'s sent message"
            t.markers[f"{name}-reply-{tag}"] = f"{name}'s reply"
        t.phone = f"+7916{rng.randint(10**6, 10**7 - 1)}"
        r = self.call(t, "POST", "/v1/clients", {"name": f"{name}-client-{tag}", "phone": t.phone},
                      expect=(201,))
        if r.status == 201:
            t.ids["client"].insert(0, r.json["id"])
        t.markers[f"{name}-client-{tag}"] = f"{name}'s client name"
        hook = t.integrations.get("webhooks")
        self.call(t, "PUT", "/v1/lead-routing/entities/e1",
                  {"integration_ids": [hook, t.integrations.get("email")]})
        self.call(t, "PUT", "/v1/lead-routing/projects/p1", {"integration_ids": [hook]})
        t.lead_body = {"name": f"{name}-lead-{tag}", "phone": t.phone,
                       "external_entity_id": "e1", "external_project_id": "p1"}
        t.idempotency["createLead"] = (f"idem-lead-{name}-{tag}", "/v1/leads", t.lead_body)
        r = self.call(t, "POST", "/v1/leads", t.lead_body,
                      {"Idempotency-Key": t.idempotency["createLead"][0]}, expect=(201,))
        if r.status == 201:
            t.ids["lead"].append(r.json["id"])
        t.markers[f"{name}-lead-{tag}"] = f"{name}'s lead name"
        for version in range(1, (51 if full else 1) + 1):
            content = (f"## Роль\nТы бот {name}-prompt-{tag}-v{version}.\n"
                       f"## Правила\nОтвечай вежливо.")
            self.call(t, "PUT", "/v1/prompt", {"content": content})
        t.markers[f"{name}-prompt-{tag}"] = f"{name}'s prompt"
        bot_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        SECRETS.add("configured bot webhook secret", bot_secret)
        self.call(t, "PUT", "/v1/profile",
                  {"name": f"{name}-profile-{tag}", "business_type": "retail", "language": "ru",
                   "timezone": "Europe/Moscow", "phone": t.phone,
                   "bot_webhook_url": f"https://bot.example.com/{name}",
                   "bot_webhook_secret": bot_secret})
        t.markers[f"{name}-profile-{tag}"] = f"{name}'s profile name"
        self.call(t, "PUT", "/v1/catalog",
                  {"items": [{"name": f"{name}-item-{tag}-1", "price_minor": 1000, "currency": "RUB"},
                             {"name": f"{name}-item-{tag}-2", "price_minor": 2000, "currency": "RUB",
                              "description": f"{name}-desc-{tag}"}]})
        t.markers[f"{name}-item-{tag}"] = f"{name}'s catalog item"
        t.markers[f"{name}-desc-{tag}"] = f"{name}'s catalog description"
        t.markers[f"{name}-inbound-{tag}"] = f"{name}'s inbound message"
        t.markers[f"https://crm.example.com/{name}-hook"] = f"{name}'s webhook URL"
        t.markers[f"https://bot.example.com/{name}"] = f"{name}'s bot webhook URL"
        t.markers[f"sales@{name}.example.com"] = f"{name}'s e-mail recipients"
        if full:
            self.cursors(t)
        for value, kind in list(SECRETS.kinds.items()):
            if value in (bot_token, hook_secret, crm_token, smtp_password, bot_secret) or \
                    value in t.keys.values() or value in t.webhook_secrets.values():
                t.markers[value] = kind
        return t

    def cursors(self, t):
        def page(op_id, path):
            r = self.call(t, "GET", path, expect=(200,))
            cursor = (r.json or {}).get("next_cursor")
            if cursor:
                t.cursors.setdefault(op_id, []).append(cursor)
            else:
                self.failures.append(f"{t.name}: no next_cursor from GET {path}")
        page("integrationLogs", f"/v1/integrations/{t.integrations.get('telegram_bot')}/logs?limit=1")
        page("listDialogs", "/v1/inbox/dialogs?limit=1")
        page("listDialogMessages", f"/v1/inbox/dialogs/{t.first('dialog')}/messages?limit=1")
        page("promptHistory", "/v1/prompt/history")


def telegram_update(chat, text, rng):
    return {"update_id": rng.randint(1, 2**31),
            "message": {"message_id": rng.randint(1, 2**31), "date": int(time.time()),
                        "from": {"id": chat, "is_bot": False, "first_name": "Ivan"},
                        "chat": {"id": chat, "type": "private"}, "text": text}}


# ---------------------------------------------------------------- requests


class Varied:
    """The slot a request puts the victim's value in."""

    def __init__(self, where, kind, value, origin):
        self.where, self.kind, self.value, self.origin = where, kind, value, origin

    def __str__(self):
        return f"{self.where} {self.kind} = {self.value!r} ({self.origin})"


class Req:
    def __init__(self, op, path, query=None, body=None, headers=None, varied=None,
                 must_succeed=False, note=""):
        self.op, self.path, self.query, self.body = op, path, query or [], body
        self.headers = headers or {}
        self.varied, self.must_succeed, self.note = varied, must_succeed, note

    def target(self):
        return self.path + ("?" + urllib.parse.urlencode(self.query) if self.query else "")


def guesses(value, n, rng):
    """Ids of the same format: `value` with one character changed, and random ones."""
    prefix = ""
    for p in ("dlg_", "ak_"):
        if value.startswith(p):
            prefix = p
    body = value[len(prefix):]
    if all(c in HEX for c in body):
        alphabet = HEX
    elif all(c in ULID_ALPHABET for c in body):
        alphabet = ULID_ALPHABET
    elif all(c in ULID_ALPHABET.upper() for c in body):
        alphabet = ULID_ALPHABET.upper()
    else:
        alphabet = ULID_ALPHABET
    out = []
    for _ in range(n):
        i = rng.randrange(len(body))
        c = rng.choice([a for a in alphabet if a != body[i]])
        out.append((prefix + body[:i] + c + body[i + 1:], "one character changed"))
    for _ in range(n):
        out.append((prefix + "".join(rng.choice(alphabet) for _ in body), "same shape"))
    return out


def tricks(value, tenant):
    return [(value.upper(), "upper case"), (value + "%20", "trailing space"),
            (value[:-1], "one character short"), (value + "0", "one character long"),
            (f"TENANT%23{tenant}%23{value}", "key prefix"), (f"{value}%23{tenant}", "#tenant suffix"),
            (f"..%2F{value}", "encoded ../"), (f"{value}%00", "NUL")]


def candidates(victim, kind, n, rng, with_tricks=True):
    real = victim.ids.get(kind) if kind != "unknown" else [v for vs in victim.ids.values() for v in vs]
    out = [(v, "real") for v in real or []]
    for v in real or []:
        out += [(g, f"guess: {how}") for g, how in guesses(v, n, rng)]
    if with_tricks and real:
        out += [(t, f"trick: {how}") for t, how in tricks(real[0], victim.name)]
    return out


def forged_cursors(cursor, victim, me):
    """The victim's cursor as it is; with its sort key cut back to the start of its range; and
    with all but one of its tenant-naming fields turned to the caller's tenant (a check that
    validates one field and pages by another would show the victim's items)."""
    out = [(cursor, "real cursor")]
    try:
        decoded = json.loads(unb64url(cursor))
    except (ValueError, binascii.Error):
        return out
    if not isinstance(decoded, dict):
        return out
    mine, theirs = f"TENANT#{me.name}", f"TENANT#{victim.name}"
    tenant_fields = [k for k, v in decoded.items() if isinstance(v, str) and v.startswith(theirs)]
    for key, value in decoded.items():
        if isinstance(value, str) and value.count("#") >= 2 and not value.startswith(theirs):
            forged = dict(decoded)
            forged[key] = value.rsplit("#", 1)[0] + "#"
            out.append((b64url_json(forged), f"cursor with {key} cut to its range start"))
    swap = lambda v: mine + v[len(theirs):]
    for keep in tenant_fields:
        forged = {k: swap(v) if k in tenant_fields and k != keep else v for k, v in decoded.items()}
        if len(tenant_fields) > 1:
            out.append((b64url_json(forged), f"cursor naming {victim.name} in {keep} only"))
    moved = {k: swap(v) if k in tenant_fields else v for k, v in decoded.items()}
    out.append((b64url_json(moved), f"cursor with {victim.name}'s keys under {me.name}'s tenant"))
    return out


def body_template(op, me, victim):
    """A request body for `op` with `me`'s ids, and the body slots that may take the victim's.

    Returns [(body, [(field, kind, as_list)], must_succeed, note)].
    """
    hook = me.integrations.get("webhooks", "x")
    t = {
        "connectIntegration": [({"provider": "webhooks", "name": "attack",
                                 "config": {"url": "https://crm.example.com/attack"}}, [], False, "")],
        "patchIntegration": [({"name": "pwned", "is_enabled": False, "is_primary": True}, [], False, "")],
        "createApiKey": [({"name": "attack", "scopes": ["config:read"]}, [], False, "")],
        "putProfile": [({"name": "pwned", "business_type": "other", "language": "en",
                         "timezone": "UTC"}, [], False, "")],
        "putCatalog": [({"items": [{"name": "pwned", "price_minor": 1, "currency": "USD"}]}, [], False, "")],
        "putPrompt": [({"content": "## Role\npwned\n## Rules\nnone"}, [], False, "")],
        "restorePrompt": [({"version": 1}, [], False, "")],
        "validatePrompt": [({"content": "## Role\nx\n## Rules\ny"}, [], False, "")],
        "receiveWebhook": [(telegram_update(1, "attack", random.Random(1)), [], False, "")],
        "sendTelegram": [({"client_id": me.first("client"), "text": "attack"},
                          [("client_id", "client", False), ("integration_id", "integration", False)],
                          False, "")],
        "sendTelegramCrm": [({"client_id": me.first("client"), "text": "attack",
                              "integration_id": me.integrations.get("telegram_crm", "x")},
                             [("client_id", "client", False), ("integration_id", "integration", False)],
                             False, "")],
        "createClient": [({"name": "attack", "phone": victim.phone}, [], True,
                          "the victim's phone: a client of the attacker's own")] + [
                         ({"identities": [{"channel": "telegram", "external_id": c}]}, [], True,
                          "the victim's Telegram identity: a client of the attacker's own")
                         for c in victim.chat_ids[:1]],
        "replyToDialog": [({"text": "attack"}, [], False, "")],
        "createLead": [(copy.deepcopy(victim.lead_body), [], False, "the victim's body")],
        "resendLeads": [({"lead_ids": [me.first("lead")]}, [("lead_ids", "lead", True)], False, "")],
        "resendLead": [({}, [], False, "")],
        "putLeadRouting": [({"integration_ids": [hook]}, [("integration_ids", "integration", True)],
                            False, "")],
    }
    if op.id in t:
        return t[op.id]
    if not op.has_body:
        return [(None, [], False, "")]
    # An operation added after this suite: its documented example, else an empty object.
    content = resolve(DOC, op.spec["requestBody"]).get("content", {}).get("application/json", {})
    example = content.get("example")
    if example is None and content.get("examples"):
        example = resolve(DOC, next(iter(content["examples"].values()))).get("value")
    return [(example if example is not None else {}, [], False, "no template: documented example")]


def build(op, me, victim, n, rng, vary=True, cursors=True):
    """The requests of one operation: `me`'s ids everywhere, then the victim's in one slot at
    a time (vary=False: the victim's ids everywhere, one request per body variant)."""
    out = []
    path_defaults, path_slots = {}, []
    for p in op.path_params():
        kind = id_kind(op, p["name"])
        if kind == "routing":
            continue
        if kind == "provider":
            providers = op.enum("provider") or ["telegram_bot"]
            path_defaults[p["name"]] = "telegram_bot" if "telegram_bot" in providers else providers[0]
            continue
        owner = victim if not vary else me
        path_defaults[p["name"]] = owner.first(kind)
        if op.path.startswith("/v1/webhooks/") and kind == "integration":
            # The owner's own bot: its webhook with its own secret is the control.
            path_defaults[p["name"]] = owner.integrations.get("telegram_bot", owner.first(kind))
        path_slots.append((p["name"], kind))
    if "scope" in {p["name"] for p in op.path_params()}:
        routings = victim.routing
    else:
        routings = [None]
    headers = {}
    if op.id == "webhookPreflight":
        headers["Origin"] = "https://shop.example.com"
    query = []
    for p in op.query_params():
        if p.get("required") and p["name"] == "phone":
            query.append(("phone", victim.phone))

    def fill(values, routing):
        path = op.path
        for name, value in values.items():
            path = path.replace("{" + name + "}", value)
        if routing:
            path = path.replace("{scope}", routing[0]).replace("{external_id}", routing[1])
        return path

    if vary and op.id in victim.idempotency:
        # First of all, the victim's request exactly — its path, body and Idempotency-Key: a
        # key store shared across tenants would replay the victim's answer.
        key, path, body = victim.idempotency[op.id]
        out.append(Req(op, path, query, copy.deepcopy(body), dict(headers, **{"Idempotency-Key": key}),
                       Varied("header", "idempotency", key, "the victim's request and key")))
    for body, body_slots, must_succeed, note in body_template(op, victim if not vary else me, victim):
        for routing in routings:
            base_values = dict(path_defaults)
            if not vary:
                out.append(Req(op, fill(base_values, routing), query, body, dict(headers),
                               must_succeed=must_succeed, note=note))
                continue
            control = op.id == "receiveWebhook"
            out.append(Req(op, fill(base_values, routing), query, body, dict(headers),
                           varied=Varied("path", "routing", "/".join(routing), "victim's external id")
                           if routing else None, must_succeed=must_succeed or control,
                           note="control: the attacker's own bot with its own secret" if control else note))
            for name, kind in path_slots:
                for value, origin in candidates(victim, kind, n, rng):
                    values = dict(base_values)
                    values[name] = value
                    if op.path.startswith("/v1/webhooks/"):
                        providers = op.enum("provider") or []
                        if origin == "real":
                            for provider in providers:
                                values = dict(values, provider=provider)
                                out.append(Req(op, fill(values, routing), query, body, dict(headers),
                                               Varied("path", kind, f"{provider}/{value}", origin)))
                            continue
                        values["provider"] = "telegram_bot"
                    out.append(Req(op, fill(values, routing), query, body, dict(headers),
                                   Varied("path", kind, value, origin)))
            for field, kind, as_list in body_slots:
                for value, origin in candidates(victim, kind, n, rng, with_tricks=False):
                    b = copy.deepcopy(body)
                    b[field] = [value] if as_list else value
                    if field == "client_id" and "integration_id" in b and op.id == "sendTelegram":
                        del b["integration_id"]
                    out.append(Req(op, fill(base_values, routing), query, b, dict(headers),
                                   Varied("body", kind, value, origin)))
            for p in op.query_params():
                name = p["name"]
                if name == "integration_id":
                    for value, origin in candidates(victim, "integration", n, rng, with_tricks=False):
                        out.append(Req(op, fill(base_values, routing), query + [(name, value)], body,
                                       dict(headers), Varied("query", "integration", value, origin)))
                if name == "cursor" and cursors:
                    for cursor in victim.cursors.get(op.id, []):
                        for value, origin in forged_cursors(cursor, victim, me):
                            out.append(Req(op, fill(base_values, routing), query + [("cursor", value)],
                                           body, dict(headers), Varied("query", "cursor", value, origin)))
    return out


# ---------------------------------------------------------------- judging


class Tally:
    def __init__(self, name):
        self.name = name
        self.sent = 0
        self.statuses = Counter()
        self.refused = Counter()  # expected refusals, by status
        self.own_2xx = 0
        self.controls = 0
        self.breaches, self.suspects, self.unexpected, self.server_errors = [], [], [], []

    def failed(self):
        return len(self.breaches) + len(self.suspects) + len(self.unexpected) + len(self.server_errors)

    def line(self, what):
        refused = ", ".join(f"{n}×{s}" for s, n in sorted(self.refused.items(), key=lambda i: str(i[0]))) or "none"
        extra = f", {self.own_2xx} 2xx on the attacker's own data" if self.own_2xx else ""
        extra += f", {self.controls} controls passed" if self.controls else ""
        return (f"{self.name} {what}: {self.sent} requests, {len(self.breaches)} breaches, "
                f"{len(self.suspects)} suspect 2xx, {len(self.unexpected)} wrong refusals, "
                f"{len(self.server_errors)} 5xx; expected refusals {sum(self.refused.values())} "
                f"({refused}){extra}")


def victim_data_in(response, victim, sent="", sanitize=None):
    """What of the victim's an answer holds; a marker the request itself carried is its echo
    (whether taking it was right is the slot's judgement)."""
    parsed = response.json
    if sanitize and parsed is not None:
        parsed = sanitize(copy.deepcopy(parsed))
    text = json.dumps(parsed, ensure_ascii=False) if parsed is not None else response.text
    hits = sorted({what for marker, what in victim.markers.items()
                   if marker in text and marker not in sent})

    def tenant_ids(obj):
        if isinstance(obj, dict):
            if obj.get("tenant_id") == victim.name:
                hits.append(f"tenant_id {victim.name}")
                return
            for v in obj.values():
                tenant_ids(v)
        elif isinstance(obj, list):
            for v in obj:
                tenant_ids(v)
    tenant_ids(parsed)
    return hits


def describe(req, cred, r, why):
    body = SECRETS.redact(r.text[:400].replace("\n", " "))
    headers = ", ".join(sorted(req.headers)) or "none"
    return (f"{why}\n      request: {req.op.method} {SECRETS.redact(req.target())} as {cred.label} "
            f"(headers: {headers}; varied: {req.varied}{'; ' + req.note if req.note else ''})\n"
            f"      body sent: {SECRETS.redact(shown(req.body)[:300])}\n"
            f"      answer: {r.status} {body}")


def shown(body):
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return json.dumps(body, ensure_ascii=False)


def bulk_resend_sanitizer(varied):
    def sanitize(parsed):
        if isinstance(parsed, dict) and isinstance(parsed.get("errors"), list):
            parsed["errors"] = [e for e in parsed["errors"]
                                if not (e.get("code") == "LEAD_NOT_FOUND" and e.get("lead_id") == varied)]
        return parsed
    return sanitize


def judge_cross(tally, req, cred, r, victim):
    """A request of another tenant's credentials that names the victim's ids."""
    tally.sent += 1
    tally.statuses[r.status] += 1
    if r.status >= 500:
        tally.server_errors.append(describe(req, cred, r, "5xx"))
        return
    if not 200 <= r.status < 300:
        if req.must_succeed and cred.kind == "token" and r.status not in (401, 403):
            tally.suspects.append(describe(req, cred, r, "refused, though the attacker's own tenant "
                                           "should take it (a cross-tenant oracle?)"))
        elif req.must_succeed and cred.kind == "webhook":
            tally.unexpected.append(describe(req, cred, r, "control failed: the attacker's own "
                                             "webhook secret is refused on its own integration, so "
                                             "its refusals on the victim's prove nothing"))
        elif 300 <= r.status < 400:
            tally.unexpected.append(describe(req, cred, r, "a 3xx"))
        else:
            tally.refused[r.status] += 1
        return
    varied = req.varied
    sanitize = None
    explained = False
    if req.op.id == "resendLeads" and varied and varied.where == "body":
        sanitize = bulk_resend_sanitizer(varied.value)
        j = r.json or {}
        explained = (j.get("dispatched_count") == 0 and any(
            e.get("lead_id") == varied.value and e.get("code") == "LEAD_NOT_FOUND"
            for e in j.get("errors", [])))
    hits = victim_data_in(r, victim, urllib.parse.unquote(req.target()) + shown(req.body), sanitize)
    if hits:
        tally.breaches.append(describe(req, cred, r, f"BREACH: the answer holds {', '.join(hits)}"))
        return
    if varied and varied.kind not in ("routing", "cursor", "idempotency") and varied.where != "query" \
            and not explained:
        if varied.origin == "real" and varied.where == "path" and req.op.method not in ("GET", "HEAD", "OPTIONS"):
            tally.breaches.append(describe(req, cred, r, "BREACH: a write to the victim's resource was accepted"))
        else:
            tally.suspects.append(describe(req, cred, r, "a 2xx for an id the caller does not own"))
        return
    if explained:
        tally.refused["200 LEAD_NOT_FOUND entry"] += 1
        return
    if req.must_succeed and cred.kind == "webhook":
        tally.controls += 1
        return
    tally.own_2xx += 1


def judge_refusal(tally, req, cred, r, expected_status, expected_code=None):
    tally.sent += 1
    tally.statuses[r.status] += 1
    if r.status >= 500:
        tally.server_errors.append(describe(req, cred, r, "5xx"))
    elif 200 <= r.status < 300:
        tally.breaches.append(describe(req, cred, r, f"BREACH: accepted ({expected_status} expected)"))
    elif r.status != expected_status or (expected_code and r.code() != expected_code):
        tally.unexpected.append(describe(req, cred, r, f"{expected_status} {expected_code or ''} expected"))
    else:
        tally.refused[r.status] += 1


class Cred:
    def __init__(self, label, kind, headers):
        self.label, self.kind, self.headers = label, kind, headers


VERBOSE = os.environ.get("ATTACK_VERBOSE") == "1"


def send(client, req, cred, tally_name):
    headers = dict(req.headers)
    headers.update(cred.headers)
    r = client.send(req.op.method, req.target(), req.body, headers,
                    label=f"{tally_name}: {req.op.method} {req.target()} as {cred.label}")
    if VERBOSE:
        print(f"   {tally_name}: {r.status} {r.code() or ''} {req.op.method} "
              f"{SECRETS.redact(req.target())} as {cred.label} [{req.varied}]", flush=True)
    return r


# ---------------------------------------------------------------- parts


def part2(client, ops, a, b, n, rng):
    tally = Tally("part 2")
    creds = [Cred(f"{b.name} owner token", "token", {"Authorization": f"Bearer {b.token}"})]
    creds += [Cred(f"{b.name} API key {scope}", "key", {"X-Api-Key": key}) for scope, key in b.keys.items()]
    webhook_creds = [Cred("no credentials", "none", {}),
                     Cred(f"{b.name}'s webhook secrets", "webhook", {
                         "X-Telegram-Bot-Api-Secret-Token": b.webhook_secrets.get("telegram_bot", ""),
                         "X-Max-Bot-Api-Secret": b.webhook_secrets.get("telegram_bot", ""),
                         "X-Webhook-Secret": b.webhook_secrets.get("telegram_crm", "")})]
    for op in ops:
        for req in build(op, b, a, n, rng):
            for cred in (webhook_creds if op.path.startswith("/v1/webhooks/") else creds):
                judge_cross(tally, req, cred, send(client, req, cred, "part 2"), a)
    return tally


def bad_tokens(a, b, secret):
    now = int(time.time())
    good = {"tenant_id": a.name, "sub": "attacker", "role": "owner", "exp": now + 3600}

    def signed(claims, key=secret, header=None, drop=()):
        c = dict(good, **claims)
        for k in drop:
            c.pop(k, None)
        token = mint(key, c, header)
        if key == secret:
            SECRETS.add("dashboard token", token)
        return token

    valid = signed({})
    h, p, s = valid.split(".")
    b_h, b_p, b_s = b.token.split(".")
    return [
        ("no Authorization", None),
        ("alg none, no signature", f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{p}."),
        ("alg none, the HS256 signature kept", f"{b64url_json({'alg': 'none'})}.{p}.{s}"),
        ("alg NONE", f"{b64url_json({'alg': 'NONE'})}.{p}."),
        ("alg HS512 signed with HS256", signed({}, header={"alg": "HS512", "typ": "JWT"})),
        ("alg hs256 (lower case)", signed({}, header={"alg": "hs256", "typ": "JWT"})),
        ("no alg", signed({}, header={"typ": "JWT"})),
        ("HS256 with a wrong key", signed({}, key=secrets.token_bytes(32))),
        ("HS256 with an empty key", signed({}, key=b"")),
        ("the secret's first half as key", signed({}, key=secret[: len(secret) // 2])),
        ("rival's signature on acme's claims", f"{b_h}.{p}.{b_s}"),
        ("signature cut short", f"{h}.{p}.{s[:-4]}"),
        ("two signatures", f"{h}.{p}.{s}.{s}"),
        ("expired (exp 10 s ago)", signed({"exp": now - 10})),
        ("exp 1 s ago", signed({"exp": now - 1})),
        ("no exp", signed({}, drop=("exp",))),
        ("exp a string", signed({"exp": str(now + 3600)})),
        ("nbf an hour ahead", signed({"nbf": now + 3600})),
        ("nbf a string", signed({"nbf": "now"})),
        ("no tenant_id", signed({}, drop=("tenant_id",))),
        ("empty tenant_id", signed({"tenant_id": ""})),
        ("tenant_id acme#x", signed({"tenant_id": f"{a.name}#x"})),
        ("tenant_id acme#", signed({"tenant_id": f"{a.name}#"})),
        ("tenant_id TENANT#acme", signed({"tenant_id": f"TENANT#{a.name}"})),
        ("tenant_id rival#acme", signed({"tenant_id": f"{b.name}#{a.name}"})),
        ("tenant_id acme%23x", signed({"tenant_id": f"{a.name}%23x"})),
        ("tenant_id 'acme '", signed({"tenant_id": f"{a.name} "})),
        ("tenant_id acme/..", signed({"tenant_id": f"{a.name}/.."})),
        ("tenant_id a list", signed({"tenant_id": [a.name]})),
        ("tenant_id a number", signed({"tenant_id": 1})),
        ("no role", signed({}, drop=("role",))),
        ("unknown role superadmin", signed({"role": "superadmin"})),
        ("role Owner (case)", signed({"role": "Owner"})),
        ("role a list", signed({"role": ["owner"]})),
        ("empty role", signed({"role": ""})),
        ("no sub", signed({}, drop=("sub",))),
        ("not a JWT", "not-a-token"),
        ("an API key as the bearer token", a.keys.get("config:read", "x")),
    ]


def part3(client, ops, a, b, secret, n, rng):
    tally = Tally("part 3")
    dashboard = [op for op in ops if op.roles is not None]
    for label, token in bad_tokens(a, b, secret):
        cred = Cred(f"bad token: {label}", "token", {"Authorization": f"Bearer {token}"} if token else {})
        for op in dashboard:
            for req in build(op, a, a, n, rng, vary=False):
                judge_refusal(tally, req, cred, send(client, req, cred, "part 3"), 401)
    for role in ("owner", "admin", "agent"):
        token = a.mint_token(role)
        cred = Cred(f"{a.name} {role} token", "token", {"Authorization": f"Bearer {token}"})
        for op in dashboard:
            if role in op.roles:
                continue
            for req in build(op, a, a, n, rng, vary=False):
                judge_refusal(tally, req, cred, send(client, req, cred, "part 3"), 403, "ROLE_REQUIRED")
    # Valid tokens of tenants whose ids look like the victim's: their own data only.
    for name in LOOKALIKE_TENANTS:
        twin = Tenant(name, secret)
        cred = Cred(f"look-alike tenant {name!r} owner token", "token",
                    {"Authorization": f"Bearer {twin.token}"})
        for op in dashboard:
            for req in build(op, twin, a, 0, rng, vary=True, cursors=True):
                if req.varied is None or req.varied.origin in ("real", "real cursor", "victim's external id",
                                                               "the victim's request and key"):
                    judge_cross(tally, req, cred, send(client, req, cred, "part 3"), a)
    return tally


def part4(client, ops, a, secret, n, rng, setup):
    tally = Tally("part 4")
    key_ops = [op for op in ops if op.api_key]
    dashboard_only = [op for op in ops if op.dashboard and not op.api_key]
    for op in key_ops:
        if op.scope is None:
            tally.unexpected.append(f"{op.name()} takes an API key, but this suite knows no scope "
                                    f"for it: add it to SCOPE_BY_PREFIX in infra/attack.py")
            continue
        for req in build(op, a, a, n, rng, vary=False):
            for scope, key in a.keys.items():
                cred = Cred(f"{a.name} API key {scope}", "key", {"X-Api-Key": key})
                if scope == op.scope:
                    # The key with the right scope gets past the check: a read as it is, a
                    # write with a malformed body (400 from the handler, nothing changes).
                    if req.op.method == "DELETE":
                        continue
                    probe = req if req.op.method == "GET" else \
                        Req(req.op, req.path, req.query, b"{", req.headers)
                    r = send(client, probe, cred, "part 4")
                    tally.sent += 1
                    tally.statuses[r.status] += 1
                    if r.status >= 500:
                        tally.server_errors.append(describe(probe, cred, r, "5xx"))
                    elif r.status in (401, 403):
                        tally.unexpected.append(describe(probe, cred, r, "control: the key with the "
                                                         "right scope was refused"))
                    else:
                        tally.controls += 1
                else:
                    judge_refusal(tally, req, cred, send(client, req, cred, "part 4"), 403,
                                  "INSUFFICIENT_SCOPE")
    for op in dashboard_only:
        for req in build(op, a, a, n, rng, vary=False):
            for scope, key in a.keys.items():
                cred = Cred(f"{a.name} API key {scope} on a dashboard-only route", "key", {"X-Api-Key": key})
                judge_refusal(tally, req, cred, send(client, req, cred, "part 4"), 401)
    key = a.keys.get("config:read", "ak_x")
    altered = [("upper case", key.upper()), ("one character short", key[:-1]),
               ("one character more", key + "0"), ("the prefix only", key[:8]),
               ("last character changed", key[:-1] + ("0" if key[-1] != "0" else "1")),
               ("without ak_", key[3:])]
    for label, value in altered:
        SECRETS.add("altered API key", value)
        cred = Cred(f"{a.name} API key, {label}", "key", {"X-Api-Key": value})
        for op in key_ops:
            for req in build(op, a, a, n, rng, vary=False):
                judge_refusal(tally, req, cred, send(client, req, cred, "part 4"), 401)

    def key_with_every_scope(tenant):
        r = setup.call(tenant, "POST", "/v1/api-keys", {"name": "every scope", "scopes": list(SCOPES)},
                       expect=(201,))
        return (r.json or {}).get("key", "ak_x"), (r.json or {}).get("id", "x")

    def control(tenant, raw, label):
        r = client.send("GET", "/v1/bot/config", None, {"X-Api-Key": raw}, label=label)
        tally.sent += 1
        if r.status == 200 and (r.json or {}).get("tenant_id") == tenant.name:
            tally.controls += 1
        else:
            tally.unexpected.append(f"control: {label}: GET /v1/bot/config -> {r.status}")

    # Revoked: a key of A's with every scope, used, revoked, used again.
    raw, key_id = key_with_every_scope(a)
    a.revoked_key_id = key_id
    control(a, raw, f"{a.name}'s key before it is revoked")
    r = setup.call(a, "DELETE", f"/v1/api-keys/{key_id}", expect=(200,))
    tally.sent += 1
    if r.status == 200 and (r.json or {}).get("revoked_at"):
        tally.controls += 1
    else:
        tally.unexpected.append(f"DELETE /v1/api-keys/{key_id} -> {r.status}, no revoked_at")
    cred = Cred(f"{a.name}'s revoked API key", "key", {"X-Api-Key": raw})
    for op in key_ops + dashboard_only:
        for req in build(op, a, a, n, rng, vary=False):
            judge_refusal(tally, req, cred, send(client, req, cred, "part 4"), 401)
    # A deleted tenant's key.
    doomed = Tenant("doomed", secret)
    raw, _ = key_with_every_scope(doomed)
    r = setup.call(doomed, "POST", "/v1/integrations", {"provider": "webhooks", "config":
                                                       {"url": "https://crm.example.com/doomed"}},
                   expect=(201,))
    control(doomed, raw, "the doomed tenant's key before the tenant is deleted")
    r = setup.call(doomed, "DELETE", "/v1/tenant", expect=(200,))
    tally.sent += 1
    if r.status == 200 and (r.json or {}).get("deleted_items", 0) > 0:
        tally.controls += 1
    else:
        tally.unexpected.append(f"DELETE /v1/tenant as doomed's owner -> {r.status}")
    cred = Cred("the deleted tenant's API key", "key", {"X-Api-Key": raw})
    for op in key_ops + dashboard_only:
        for req in build(op, doomed, doomed, n, rng, vary=False):
            judge_refusal(tally, req, cred, send(client, req, cred, "part 4"), 401)
    for path in ("/v1/integrations", "/v1/api-keys"):
        r = setup.call(doomed, "GET", path, expect=(200,))
        tally.sent += 1
        if r.status == 200 and (r.json or {}).get("items") == []:
            tally.controls += 1
        else:
            tally.unexpected.append(f"after DELETE /v1/tenant, GET {path} as doomed -> {r.status} "
                                    f"with {len((r.json or {}).get('items') or [])} items")
    return tally


# ---------------------------------------------------------------- verification


def snapshot(setup, a):
    snap = {}

    def get(name, path, pick=lambda j: j, key=None):
        r = setup.call(a, "GET", path, key=key, expect=(200,))
        snap[name] = (r.status, pick(r.json) if r.status == 200 else r.text[:200])

    def integration(i):
        return {k: i.get(k) for k in ("id", "provider", "name", "is_enabled", "is_primary", "config",
                                      "webhook_url")}
    get("integrations", "/v1/integrations", lambda j: sorted((integration(i) for i in j["items"]),
                                                              key=lambda i: i["id"]))
    for iid in a.ids["integration"]:
        get(f"integration {iid}", f"/v1/integrations/{iid}", integration)
        get(f"logs of {iid}", f"/v1/integrations/{iid}/logs?limit=100",
            lambda j: sorted((e["id"], e["event"]) for e in j["items"] if e["event"] != "live_check"))
    get("api keys", "/v1/api-keys", lambda j: sorted(
        ({k: i.get(k) for k in ("id", "name", "scopes", "revoked_at", "prefix")} for i in j["items"]
         if i["id"] in a.ids["api_key"]), key=lambda i: i["id"]))
    for scope_path, external_id in a.routing:
        get(f"routing {scope_path}/{external_id}", f"/v1/lead-routing/{scope_path}/{external_id}")
    get("prompt", "/v1/prompt", lambda j: (j["version"], j["content"], j.get("changed_by")))
    get("prompt history", "/v1/prompt/history", lambda j: [p["version"] for p in j["items"]])
    get("profile", "/v1/profile")
    get("catalog", "/v1/catalog")
    for cid in a.ids["client"]:
        get(f"client {cid}", f"/v1/clients/{cid}", lambda j: {k: j.get(k) for k in
                                                                 ("id", "name", "phone", "identities")})
    for lid in a.ids["lead"]:
        get(f"lead {lid}", f"/v1/leads/{lid}")
        get(f"deliveries of {lid}", f"/v1/leads/{lid}/deliveries",
            lambda j: sorted((d["integration_id"], d["round"]) for d in j["items"]))
    get("dialogs", "/v1/inbox/dialogs", lambda j: sorted((d["id"], d["client_id"], d["integration_id"])
                                                          for d in j["items"]))
    for did in a.ids["dialog"]:
        get(f"messages of {did}", f"/v1/inbox/dialogs/{did}/messages?limit=200",
            lambda j: sorted((m["id"], m["direction"], m["text"]) for m in j["items"]))
    get("bot config via the config:read key", "/v1/bot/config",
        lambda j: (j["tenant_id"], sorted(c["id"] for c in j["channels"] + j["crm"] + j["lead_targets"])),
        key=a.keys.get("config:read"))
    return snap


def verify(setup, a, before):
    after = snapshot(setup, a)
    changed = []
    for name, value in before.items():
        if after.get(name) != value:
            changed.append(f"{name}: changed (before {SECRETS.redact(str(value))[:300]}; "
                           f"after {SECRETS.redact(str(after.get(name)))[:300]})")
    return len(before), changed


# ---------------------------------------------------------------- secrets scan


def encoded_forms(value):
    raw = value.encode()
    forms = [("raw", raw), ("hex", raw.hex().encode())]
    for offset in range(3):
        enc = base64.b64encode(raw[offset:])[:-4]
        if len(enc) >= 16:
            forms.append((f"base64@{offset}", enc))
            forms.append((f"base64url@{offset}", enc.replace(b"+", b"-").replace(b"/", b"_")))
    return forms


def stop_server(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    for _ in range(300):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def part5(data_dir, logs, a):
    files = [os.path.join(root, f) for root, _, names in os.walk(data_dir) for f in names] + logs
    contents = {}
    for f in files:
        with open(f, "rb") as fh:
            contents[f] = fh.read()
    raw_only = {"dashboard token", "dashboard token signature", "altered API key"}
    hits = []
    patterns = 0
    for value, kind in SECRETS.kinds.items():
        forms = [("raw", value.encode())] if kind in raw_only else encoded_forms(value)
        for form, pattern in forms:
            patterns += 1
            for f, data in contents.items():
                if pattern in data:
                    hits.append(f"a {kind} ({form}) in {f}")
    # The scan must be able to see what is there: A's plain data is in the table, the log
    # has the request lines.
    sanity = []
    marker = next((m for m, what in a.markers.items() if what.endswith("client name")), None)
    table = b"".join(d for f, d in contents.items() if f.startswith(data_dir))
    if not marker or marker.encode() not in table:
        sanity.append("acme's client name is not found in DATA_DIR: the scan cannot see the data")
    if not any(b"/v1/integrations" in contents[f] for f in logs if f in contents):
        sanity.append("no request line in the server's logs: the scan cannot see the logs")
    size = sum(len(d) for d in contents.values())
    return len(SECRETS.kinds), patterns, len(files), size, hits, sanity


# ---------------------------------------------------------------- main


def main():
    global DOC
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--openapi", default="openapi.yaml")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--log", action="append", default=[], help="a server log to scan (repeat)")
    parser.add_argument("--server-pid", type=int, required=True)
    args = parser.parse_args()
    secret = os.environ.get("ATTACK_JWT_SECRET", "").encode()
    if len(secret) < 16:
        sys.exit("ATTACK_JWT_SECRET (the dev server's LOCAL_JWT_SECRET) is not set")
    SECRETS.add("jwt secret", secret.decode())
    n = int(os.environ.get("ATTACK_GUESSES", "2"))
    seed = int(os.environ.get("ATTACK_SEED", "20261123"))
    rng = random.Random(seed)
    with open(args.openapi, encoding="utf-8") as f:
        DOC = yaml.safe_load(f)
    ops = operations(DOC)
    client = Client(args.base)
    started = time.monotonic()
    lines, failed = [], 0

    def report(line):
        print(line, flush=True)
        lines.append(line)

    print(f"==> attack: {len(ops)} operations of {args.openapi}, {n} guesses per id and way, seed {seed}",
          flush=True)
    setup = Setup(client, secret)
    a = setup.tenant("acme", rng, full=True)
    b = setup.tenant("rival", rng, full=False)
    before = snapshot(setup, a)
    counts = ", ".join(f"{k} ids: {len(v)}" for k, v in a.ids.items())
    report(f"part 1 setup: {client.sent} requests, tenants acme and rival; acme has {counts}, "
           f"{sum(len(c) for c in a.cursors.values())} page cursors, {len(a.markers)} markers; "
           f"{len(setup.failures)} setup failures")
    for failure in setup.failures:
        print(f"   setup failure: {failure}")
    failed += len(setup.failures)
    if setup.failures:
        print("the setup failed: the attack would prove nothing", file=sys.stderr)
        return 1
    setup_5xx = len(client.server_errors)
    tallies = []
    t0 = time.monotonic()
    tallies.append((part2(client, ops, a, b, n, rng),
                    "cross-tenant (rival's owner token and API keys on acme's ids)"))
    t1 = time.monotonic()
    tallies.append((part3(client, ops, a, b, secret, n, rng),
                    "tokens (bad tokens, excluded roles, look-alike tenants)"))
    t2 = time.monotonic()
    tallies.append((part4(client, ops, a, secret, n, rng, setup),
                    "API keys (wrong scope, dashboard routes, altered, revoked, deleted tenant)"))
    t3 = time.monotonic()
    for (tally, what), seconds in zip(tallies, (t1 - t0, t2 - t1, t3 - t2)):
        report(tally.line(what) + f" [{seconds:.1f} s]")
        for kind, items in (("breach", tally.breaches), ("suspect", tally.suspects),
                            ("wrong refusal", tally.unexpected), ("5xx", tally.server_errors)):
            for item in items[:20]:
                print(f"   {kind}: {item}")
            if len(items) > 20:
                print(f"   … {len(items) - 20} more of kind {kind}")
        failed += tally.failed()
    checked, changed = verify(setup, a, before)
    report(f"verify acme unchanged: {checked} views compared, {len(changed)} changed")
    for c in changed:
        print(f"   changed: {c}")
    failed += len(changed) + len(setup.failures)
    for f in setup.failures:
        print(f"   verification call failed: {f}")
    other_5xx = len(client.server_errors) - setup_5xx - sum(len(t.server_errors) for t, _ in tallies)
    if setup_5xx or other_5xx:
        for label, r in client.server_errors:
            print(f"   5xx: {label} -> {r.status} {SECRETS.redact(r.text[:300])}")
        failed += setup_5xx + max(other_5xx, 0)
    stopped = stop_server(args.server_pid)
    count, patterns, nfiles, size, hits, sanity = part5(args.data_dir, args.log, a)
    kinds = Counter(SECRETS.kinds.values())
    report(f"part 5 secrets: {count} secrets ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}) "
           f"as {patterns} patterns in {nfiles} files ({size / 1e6:.1f} MB; server "
           f"{'stopped' if stopped else 'still running'}): {len(hits)} hits")
    for h in hits:
        print(f"   secret hit: {h}")
    for s in sanity:
        print(f"   scan sanity: {s}")
    failed += len(hits) + len(sanity)
    total = client.sent
    breaches = sum(len(t.breaches) for t, _ in tallies)
    suspects = sum(len(t.suspects) for t, _ in tallies)
    server_errors = len(client.server_errors)
    wrong = sum(len(t.unexpected) for t, _ in tallies)
    verdict = "PASS" if failed == 0 else "FAIL"
    report(f"total: {total} requests, {breaches} breaches, {suspects} suspect 2xx, {wrong} wrong "
           f"refusals, {server_errors} 5xx, {len(changed)} changes of acme, {len(hits)} secret hits "
           f"— {verdict} ({time.monotonic() - started:.1f} s)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
