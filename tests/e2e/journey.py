#!/usr/bin/env python3
"""The shopper's journey through a running Souk's gateway, with assertions and timings.
Shared by the real-node test (operator/tests/support/node-e2e.sh) and the kind workflow
(scripts/e2e-kind): what runs here is what runs there.

  journey.py --gateway http://HOST:PORT --admin-email E --admin-password P --maildir DIR

register -> admin creates a product -> cart -> checkout with pm_card_visa -> order paid ->
stock down -> exactly one confirmation e-mail at the SMTP sink (a Maildir) -> order history.
Prints one line of JSON with each step's time in milliseconds; exits non-zero on any failure.
Standard library only.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid


class Failed(Exception):
    pass


def call(base, method, path, body=None, token=None, headers=None, expect=(200,)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + "/api/v1" + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, text = res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in expect:
        raise Failed(f"{method} {path}: HTTP {status} (expected {expect}): {text[:500]}")
    return json.loads(text) if text else None


def wait(what, seconds, probe):
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {seconds}s waiting for {what}")
        time.sleep(0.25)


def mails_to(maildir, address):
    new = os.path.join(maildir, "new")
    found = []
    for name in os.listdir(new) if os.path.isdir(new) else []:
        with open(os.path.join(new, name), errors="replace") as f:
            text = f.read()
        if address in text:
            found.append(text)
    return found


def journey(args):
    base = args.gateway.rstrip("/")
    timings = {}

    def timed(name, fn):
        started = time.monotonic()
        result = fn()
        timings[name] = round((time.monotonic() - started) * 1000)
        return result

    email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
    address = {"name": "Ann Shopper", "line1": "1 Main St", "city": "Springfield",
               "postal_code": "12345", "country": "US"}
    user = timed("register", lambda: call(base, "POST", "/auth/register", {
        "email": email, "password": "correct horse battery", "name": "Ann Shopper"},
        expect=(201,)))
    token = user["access_token"]
    timed("profile", lambda: call(base, "PATCH", "/users/me", {"shipping_address": address}, token))
    admin = timed("admin_login", lambda: call(base, "POST", "/auth/login", {
        "email": args.admin_email, "password": args.admin_password}))
    sku = "E2E-" + uuid.uuid4().hex[:10].upper()
    product = timed("create_product", lambda: call(base, "POST", "/products", {
        "sku": sku, "name": "End-to-end mug", "description": "Ceramic", "price_cents": 1250,
        "currency": "usd", "stock": 5}, admin["access_token"], expect=(201,)))
    pid = product["id"]
    cart = timed("add_to_cart", lambda: call(base, "POST", "/cart/items",
                                             {"product_id": pid, "quantity": 2}, token))
    if cart["subtotal_cents"] != 2500:
        raise Failed(f"cart subtotal {cart['subtotal_cents']}, expected 2500")
    order = timed("checkout", lambda: call(
        base, "POST", "/checkout", {"payment_method": "pm_card_visa"}, token,
        headers={"Idempotency-Key": uuid.uuid4().hex}, expect=(201,)))
    oid = order["id"]
    paid = timed("order_paid", lambda: wait("the order paid", 60, lambda: (
        lambda o: o if o["status"] == "paid" else None)(call(base, "GET", f"/orders/{oid}", token=token))))
    if paid["total_cents"] != 2500:
        raise Failed(f"order total {paid['total_cents']}, expected 2500")
    stock = call(base, "GET", f"/products/{pid}")["stock"]
    if stock != 3:
        raise Failed(f"stock {stock} after buying 2 of 5, expected 3")
    timed("confirmation_mail", lambda: wait("the confirmation e-mail", 60,
                                            lambda: mails_to(args.maildir, email)))
    time.sleep(1)  # a second message would be a duplicate confirmation
    count = len(mails_to(args.maildir, email))
    if count != 1:
        raise Failed(f"{count} e-mails to {email}, expected exactly one")
    history = timed("order_history", lambda: call(base, "GET", "/orders", token=token))
    if [o["id"] for o in history["items"]] != [oid]:
        raise Failed(f"order history {history}")
    empty = call(base, "GET", "/cart", token=token)
    if empty["items"]:
        raise Failed(f"cart not emptied by the paid order: {empty}")
    return {"journey": "passed", "order": oid, "timings_ms": timings,
            "total_ms": sum(timings.values())}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gateway", required=True)
    p.add_argument("--admin-email", required=True)
    p.add_argument("--admin-password", required=True)
    p.add_argument("--maildir", required=True, help="the SMTP sink's Maildir")
    args = p.parse_args()
    try:
        print(json.dumps(journey(args)))
    except Failed as e:
        print(f"journey FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
