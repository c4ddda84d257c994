#!/usr/bin/env python3
"""Souk's Stripe emulator: localstripe 1.15.10 plus a compatibility layer.

Stripe cannot be reached from our machines, so tests talk to localstripe (PyPI, pinned in
requirements.txt beside this file). Unmodified, the real `async-stripe` 1.0 client cannot parse
its answers and several flows we rely on are missing; this file loads localstripe's aiohttp
`app` in the same process and patches what Souk needs, each patch saying why:

  * answers carry the fields async-stripe requires (PaymentIntent, Charge, Refund, Event);
  * `Idempotency-Key` replays the first answer, or 400 `idempotency_error` on other parameters;
  * Stripe's decline test cards (`pm_card_chargeDeclined`, ...) answer 402 `card_error` with the
    PaymentIntent inside the error, like Stripe;
  * a refund emits `charge.refunded`;
  * nothing is written to /tmp/localstripe.pickle, so parallel instances don't collide;
  * it listens on 127.0.0.1 only, and prints one ready line on stdout;
  * /js.stripe.com/v3/ serves stripe_js.js, a stand-in Stripe.js for the storefront (card
    element, createPaymentMethod with the publishable key, confirmCardPayment).

Usage:  python3 tests/support/stripe_emulator.py --port 12111 [--log-requests]
Ready:  "stripe emulator listening on http://127.0.0.1:12111" on stdout (flushed).
Webhooks: POST /_config/webhooks/{name} with form fields url, secret, events[] (always filter:
          localstripe also emits events, such as balance.available, that async-stripe can't parse).
"""

import argparse
import asyncio
import hashlib
import json
import logging
import os
import re
import sys
from collections import defaultdict

LOCALSTRIPE_VERSION = '1.15.10'

try:
    from importlib.metadata import version
    from aiohttp import web
    from localstripe import resources as R
    from localstripe import webhooks as W
    from localstripe.errors import UserError
    from localstripe.server import app
except ImportError as e:  # a clear message for the Rust test harness, which shows our stderr
    sys.exit(f'stripe emulator: missing Python dependency ({e}); '
             f'run: pip install -r tests/support/requirements.txt')

if version('localstripe') != LOCALSTRIPE_VERSION:
    # The patches below reach into localstripe's internals: another version may break silently.
    sys.exit(f'stripe emulator: needs localstripe=={LOCALSTRIPE_VERSION}, found '
             f'{version("localstripe")}; run: pip install -r tests/support/requirements.txt')

# The API version async-stripe 1.0.0-rc.10 is generated for; events carrying another one make
# its webhook parser log a version-mismatch warning on every event.
EVENT_API_VERSION = '2026-09-30.endive'

log = logging.getLogger('stripe_emulator')


def json_response(body, status=200, headers=None):
    return web.json_response(body, status=status, headers=headers)


def stripe_error(status, type_, message, **fields):
    return json_response({'error': {'type': type_, 'message': message, **fields}}, status)


# --- No persistence --------------------------------------------------------------------------
# localstripe pickles its whole store to the fixed path /tmp/localstripe.pickle on every write:
# parallel emulators would overwrite each other's state, and a read-only /tmp turns every POST
# into a 500. Tests want a fresh, in-memory Stripe per process anyway.
R.Store.dump_to_disk = lambda self: None
R.Store.try_load_from_disk = lambda self: None


# --- Decline and authentication test cards ---------------------------------------------------
# Stripe's documented test PaymentMethods. localstripe only knows three of them, and none
# declines a PaymentIntent the way Stripe does (`pm_card_chargeDeclined` is unknown; 0002 only
# declines on attach). Card number -> (code, decline_code, message), as Stripe answers them.
TEST_PAYMENT_METHODS = {
    'pm_card_visa': '4242424242424242',
    'pm_card_chargeDeclined': '4000000000000002',
    'pm_card_visa_chargeDeclined': '4000000000000002',
    'pm_card_chargeDeclinedInsufficientFunds': '4000000000009995',
    'pm_card_chargeDeclinedExpiredCard': '4000000000000069',
    'pm_card_chargeDeclinedIncorrectCvc': '4000000000000127',
    'pm_card_chargeCustomerFail': '4000000000000341',
    'pm_card_authenticationRequired': '4000002500003155',
    # 3-D Secure 2, always challenged: the PaymentIntent waits in requires_action until
    # POST /v1/payment_intents/{id}/_authenticate (client_secret, success=true|false).
    'pm_card_threeDSecure2Required': '4000002760003184',
}
DECLINES = {
    '4000000000000002': ('card_declined', 'generic_decline', 'Your card was declined.'),
    '4000000000009995': ('card_declined', 'insufficient_funds',
                         'Your card has insufficient funds.'),
    '4000000000000069': ('expired_card', None, 'Your card has expired.'),
    '4000000000000127': ('incorrect_cvc', None, "Your card's security code is incorrect."),
    '4000000000000341': ('card_declined', 'generic_decline', 'Your card was declined.'),
}

_orig_test_article = R.PaymentMethod._try_get_canonical_test_article
_orig_charging_is_declined = R.PaymentMethod._charging_is_declined


def _test_article(cls, id):
    # Like Stripe (and localstripe), each use of a test id makes a fresh PaymentMethod.
    number = TEST_PAYMENT_METHODS.get(id)
    if number is None:
        return _orig_test_article(id)
    return R.PaymentMethod(type='card', card=dict(number=number, exp_month='12',
                                                  exp_year='2034', cvc='123'))


def _charging_is_declined(self):
    return (_orig_charging_is_declined(self) or
            (self.type == 'card' and self._card_number in DECLINES))


R.PaymentMethod._try_get_canonical_test_article = classmethod(_test_article)
R.PaymentMethod._charging_is_declined = _charging_is_declined


def _decline_of(charge):
    """(code, decline_code, message) of a failed charge, from its card number."""
    pm = R.PaymentMethod._api_retrieve(charge.payment_method)
    return DECLINES.get(getattr(pm, '_card_number', None),
                        ('card_declined', 'generic_decline', 'Your card was declined.'))


def _set_auth_failure(self):
    self.status = 'failed'
    self.failure_code, _, self.failure_message = _decline_of(self)


class CardError(UserError):
    """A 402 whose body is exactly Stripe's (UserError forces type invalid_request_error)."""

    def __init__(self, body):
        Exception.__init__(self)
        self.code = 402
        self.body = {'error': body}


def _raise_failure(self):
    # Stripe answers a declined confirm with 402 card_error and the PaymentIntent (status
    # requires_payment_method) inside the error: that is how a client learns the PI id.
    code, decline_code, message = _decline_of(self)
    body = {'type': 'card_error', 'code': code, 'message': message, 'charge': self.id,
            'doc_url': 'https://stripe.com/docs/error-codes/' + code.replace('_', '-')}
    if decline_code:
        body['decline_code'] = decline_code
    if self.payment_intent:
        body['payment_intent'] = R.PaymentIntent._api_retrieve(self.payment_intent)._export()
    raise CardError(body)


R.Charge._set_auth_failure = _set_auth_failure
R.Charge._raise_failure = _raise_failure


# --- PaymentIntent parameters localstripe refuses ----------------------------------------------
# Current Stripe needs `automatic_payment_methods[allow_redirects]=never` (or a return_url) to
# confirm server-side; localstripe answers 400 "Unexpected" to it. Only cards exist here, so
# these parameters change nothing: accept and drop them.
_orig_pi_create = R.PaymentIntent._api_create


def _pi_create(cls, automatic_payment_methods=None, allowed_payment_method_types=None, **data):
    return _orig_pi_create(**data)


R.PaymentIntent._api_create = classmethod(_pi_create)


# --- Fields async-stripe requires ------------------------------------------------------------
# async-stripe deserializes strictly: a missing non-optional field fails the whole answer.

_orig_capture = R.Charge._capture


def _capture(self, amount, on_success=None):
    # Remember what was captured: Stripe reports it as amount_captured/amount_received
    # (localstripe models a partial capture as a refund of the rest).
    _orig_capture(self, amount, on_success)
    self._souk_captured = R.try_convert_to_int(amount if amount is not None else self.amount)


R.Charge._capture = _capture


def _amount_captured(charge):
    if not charge.captured or charge.status != 'succeeded':
        return 0
    return getattr(charge, '_souk_captured', charge.amount)


def patch_export(cls):
    """Decorator: post-process cls's JSON export with the decorated function."""
    orig = cls._export

    def wrap(fix):
        def _export(self, expand=None):
            obj = orig(self, expand=expand)
            fix(self, obj, expand or [])
            return obj
        cls._export = _export
        return fix
    return wrap


@patch_export(R.PaymentIntent)
def _fix_payment_intent(pi, obj, expand):
    charge = pi.latest_charge
    status = obj['status']
    obj['amount_capturable'] = pi.amount if status == 'requires_capture' else 0
    obj['amount_received'] = _amount_captured(charge) if charge else 0
    obj['confirmation_method'] = 'automatic'
    obj['payment_method_types'] = ['card']
    # Stripe gives the charge's id unless asked to expand it.
    if charge is not None and 'latest_charge' not in expand:
        obj['latest_charge'] = charge.id
    if charge is not None:  # the PaymentMethod made from a test id (pm_card_visa -> pm_...)
        obj['payment_method'] = charge.payment_method
    obj.pop('charges', None)  # removed from Stripe's API in 2022-11-15
    error = obj.get('last_payment_error')
    if error:
        if charge is not None and charge.status == 'failed':
            code, decline_code, _ = _decline_of(charge)
            error.update(type='card_error', code=code)
            if decline_code:
                error['decline_code'] = decline_code
        else:  # 3-D Secure authentication failed
            error['type'] = 'invalid_request_error'


@patch_export(R.Charge)
def _fix_charge(charge, obj, expand):
    obj['amount_captured'] = _amount_captured(charge)
    obj['billing_details'] = {'address': None, 'email': None, 'name': None, 'phone': None}
    obj['disputed'] = False


@patch_export(R.Refund)
def _fix_refund(refund, obj, expand):
    # A refund made with `charge=` still belongs to that charge's PaymentIntent on Stripe.
    if obj.get('payment_intent') is None:
        obj['payment_intent'] = R.Charge._api_retrieve(refund.charge).payment_intent


@patch_export(R.Event)
def _fix_event(event, obj, expand):
    obj['api_version'] = EVENT_API_VERSION
    obj['pending_webhooks'] = sum(1 for w in W._webhooks.values()
                                  if w.events is None or event.type in w.events)
    obj['request'] = {'id': None, 'idempotency_key': None}


# --- charge.refunded -------------------------------------------------------------------------
# localstripe never emits it. Hooked on the API call only: localstripe also makes Refund
# objects internally for partial captures, for which Stripe sends no charge.refunded.
_orig_refund_create = R.Refund._api_create


def _refund_create(cls, **data):
    refund = _orig_refund_create(**data)
    R.schedule_webhook(R.Event('charge.refunded', R.Charge._api_retrieve(refund.charge)))
    return refund


R.Refund._api_create = classmethod(_refund_create)


# --- A charge's refunds without scanning the store ----------------------------------------------
# localstripe finds a charge's refunds by scanning every object it holds, three times per
# exported Charge (`refunds`, `amount_refunded`, `refunded`), and a PaymentIntent's creation
# exports its charge several times (events). Each request then cost time in proportion to all
# the objects made so far: the emulator fell from 88 to 25 PaymentIntents/s after ~1,100 of them,
# so any rate measured against it depended on when it was measured. Stripe's doesn't.
_refunds_by_charge = defaultdict(list)
_orig_refund_init = R.Refund.__init__


def _refund_init(self, *args, **kwargs):
    _orig_refund_init(self, *args, **kwargs)  # raises before storing anything on bad input
    _refunds_by_charge[self.charge].append(self)


def _charge_refunds(charge):
    refunds = R.List('/v1/charges/' + charge.id + '/refunds')
    refunds._list = sorted(_refunds_by_charge.get(charge.id, ()), key=lambda r: r.date,
                           reverse=True)
    return refunds


R.Refund.__init__ = _refund_init
R.Charge.refunds = property(_charge_refunds)


# --- Middlewares -----------------------------------------------------------------------------

@web.middleware
async def json_errors(request, handler):
    """Every error answer is a Stripe error object: async-stripe cannot read anything else
    (aiohttp's own 404/405/500 pages are text) and would lose the status code."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return stripe_error(e.status, 'invalid_request_error', e.reason)
    except Exception as e:  # an emulator bug or a flow localstripe doesn't implement
        log.exception('unhandled error on %s %s', request.method, request.path)
        return stripe_error(500, 'api_error', f'stripe emulator: {e!r}')


_idem_locks = defaultdict(asyncio.Lock)
_idem_answers = {}  # (api key, idempotency key) -> (request fingerprint, status, body)


@web.middleware
async def idempotency(request, handler):
    """Stripe's idempotent requests: the first answer to a POST with an `Idempotency-Key` is
    replayed for the same key and parameters; other parameters get 400 idempotency_error.
    Requests with the same key run one at a time (per-key lock), so concurrent retries cannot
    both create a PaymentIntent. Keys are scoped by API key like Stripe's (by account); they
    never expire here (Stripe keeps them 24 h, longer than any test)."""
    key = request.headers.get('Idempotency-Key')
    if request.method != 'POST' or key is None:  # Stripe ignores keys on GET and DELETE
        return await handler(request)
    if not 1 <= len(key) <= 255:
        return stripe_error(400, 'invalid_request_error',
                            'Idempotency keys must be 1 to 255 characters long.')
    body = await request.read()  # aiohttp keeps it: localstripe's handler can read it again
    fingerprint = hashlib.sha256(b'%s %s\n%s' % (request.method.encode(),
                                                 request.path_qs.encode(), body)).hexdigest()
    scope = (request.headers.get('Authorization', ''), key)
    async with _idem_locks[scope]:
        saved = _idem_answers.get(scope)
        if saved is not None:
            saved_fingerprint, status, saved_body = saved
            if saved_fingerprint != fingerprint:
                return stripe_error(
                    400, 'idempotency_error',
                    'Keys for idempotent requests can only be used with the same parameters '
                    f"they were first used with. Try using a key other than '{key}' if you "
                    'meant to execute a different request.')
            return web.Response(status=status, body=saved_body,
                                content_type='application/json',
                                headers={'Idempotent-Replayed': 'true',
                                         'Idempotency-Key': key})
        response = await handler(request)
        # Kept: successes and 4xx (a decline is a final answer). Not kept: 5xx, which here
        # means an emulator bug or an unimplemented flow, so a retry may get a real answer.
        if response.status < 500 and isinstance(response, web.Response):
            _idem_answers[scope] = (fingerprint, response.status, response.body)
        response.headers['Idempotency-Key'] = key
        return response


# --- Stripe.js for the storefront --------------------------------------------------------------
# Our stand-in (stripe_js.js beside this file) replaces localstripe's, whose createPaymentMethod
# is empty. Stripe.js creates PaymentMethods with the publishable key in the form body, which
# localstripe accepts only on a few other paths: such a request is passed on as an
# authenticated one once its key is checked.
STRIPE_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'stripe_js.js')
PUBLISHABLE_KEY_AUTH = 'Bearer sk_publishable_key_request'


@web.middleware
async def stripe_js(request, handler):
    if request.method in ('GET', 'HEAD') and request.path == '/js.stripe.com/v3/':
        with open(STRIPE_JS, encoding='utf-8') as f:
            return web.Response(text=f.read(), content_type='text/javascript',
                                headers={'Cache-Control': 'no-cache'})
    if (request.method == 'POST' and request.path == '/v1/payment_methods'
            and 'Authorization' not in request.headers):
        authed = request.clone(headers={**request.headers,
                                        'Authorization': PUBLISHABLE_KEY_AUTH})
        data = await authed.post()
        if not str(data.get('key', '')).startswith('pk_'):
            return stripe_error(401, 'invalid_request_error',
                                'You did not provide an API key.')
        return await handler(authed)
    return await handler(request)


_AUTHENTICATE = re.compile(r'^/v1/payment_intents/(pi_\w+)/_authenticate$')


@web.middleware
async def authentication_outcome(request, handler):
    """A failed 3-D Secure authentication leaves the PaymentIntent in requires_payment_method;
    Stripe then sends payment_intent.payment_failed, localstripe sends nothing. (A middleware:
    localstripe bound its route handlers at import, so patching the method would not apply.)"""
    response = await handler(request)
    match = _AUTHENTICATE.match(request.path)
    if request.method == 'POST' and match and response.status == 200:
        pi = R.PaymentIntent._api_retrieve(match.group(1))
        if pi.status == 'requires_payment_method':
            R.schedule_webhook(R.Event('payment_intent.payment_failed', pi))
    return response


# Outermost first: errors become JSON, then idempotency sees localstripe's final answers
# (its own error_middleware has already turned UserError into a response).
app.middlewares[0:0] = [json_errors, stripe_js, idempotency, authentication_outcome]


async def serve(port, log_requests):
    runner = web.AppRunner(app, access_log=log if log_requests else None)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', port)  # loopback only, unlike `localstripe`
    await site.start()
    actual_port = runner.addresses[0][1]
    print(f'stripe emulator listening on http://127.0.0.1:{actual_port}', flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--port', type=int, required=True,
                        help='TCP port on 127.0.0.1 (0 picks a free one, printed when ready)')
    parser.add_argument('--log-requests', action='store_true',
                        help='log every request and webhook delivery to stderr')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.log_requests else logging.WARNING,
                        stream=sys.stderr, format='stripe emulator: %(message)s')
    if args.log_requests:
        logging.getLogger('aiohttp.access').setLevel(logging.INFO)  # webhook deliveries
    try:
        asyncio.run(serve(args.port, args.log_requests))
    except KeyboardInterrupt:
        pass
    except OSError as e:  # port taken: say so plainly, the harness shows stderr
        sys.exit(f'stripe emulator: cannot listen on 127.0.0.1:{args.port}: {e}')


if __name__ == '__main__':
    main()
