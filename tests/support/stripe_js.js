// Souk's stand-in for Stripe.js v3, served by the Stripe emulator at /js.stripe.com/v3/.
//
// It offers what the storefront uses of Stripe.js, talking to the emulator instead of Stripe:
// `Stripe(publishableKey)`, `elements().create('card')` (plain labelled inputs instead of
// Stripe's iframe), `createPaymentMethod({type: 'card', card})`, and `confirmCardPayment(
// clientSecret)` / `handleNextAction({clientSecret})` with a small dialog playing the bank's
// 3-D Secure challenge. Requests are form-encoded with the publishable key in the body, like
// Stripe.js's, so the browser sends them without a CORS preflight. localstripe ships its own
// stand-in, but its createPaymentMethod does nothing.
(function () {
  'use strict';
  const script = document.currentScript;
  const BASE = script.src.replace(/\/js\.stripe\.com\/v3\/?(\?.*)?$/, '');

  function form(fields) {
    return Object.entries(fields).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  }

  async function post(path, fields) {
    const res = await fetch(BASE + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: form(fields),
    });
    const body = await res.json().catch(() => ({}));
    return { ok: res.ok && !body.error, body };
  }

  function input(id, label, attrs) {
    const wrap = document.createElement('span');
    wrap.className = 'souk-stripe-field';
    const l = document.createElement('label');
    l.htmlFor = id;
    l.textContent = label;
    const i = document.createElement('input');
    i.id = id;
    Object.entries(attrs).forEach(([k, v]) => i.setAttribute(k, v));
    wrap.append(l, ' ', i);
    return [wrap, i];
  }

  let counter = 0;
  class CardElement {
    constructor() { this.listeners = {}; this.inputs = null; this.nodes = []; }

    mount(target) {
      const el = typeof target === 'string' ? document.querySelector(target) : target;
      const n = ++counter;
      const [a, number] = input(`souk-card-number-${n}`, 'Card number', { inputmode: 'numeric', autocomplete: 'cc-number', placeholder: '4242 4242 4242 4242', size: 19, 'data-field': 'number' });
      const [b, expiry] = input(`souk-card-expiry-${n}`, 'Expiry (MM/YY)', { inputmode: 'numeric', autocomplete: 'cc-exp', placeholder: 'MM/YY', size: 5, 'data-field': 'expiry' });
      const [c, cvc] = input(`souk-card-cvc-${n}`, 'CVC', { inputmode: 'numeric', autocomplete: 'cc-csc', placeholder: '123', size: 4, 'data-field': 'cvc' });
      const [d, postal] = input(`souk-card-postal-${n}`, 'ZIP', { autocomplete: 'postal-code', size: 6, 'data-field': 'postal' });
      this.inputs = { number, expiry, cvc, postal };
      this.nodes = [a, b, c, d];
      Object.values(this.inputs).forEach((i) => i.addEventListener('input', () => {
        (this.listeners.change || []).forEach((fn) => fn({ complete: this.complete(), empty: !number.value }));
      }));
      el.append(...this.nodes);
    }

    unmount() { this.nodes.forEach((n) => n.remove()); this.nodes = []; }
    destroy() { this.unmount(); this.inputs = null; }
    on(event, fn) { (this.listeners[event] = this.listeners[event] || []).push(fn); }
    focus() { this.inputs && this.inputs.number.focus(); }
    clear() { this.inputs && Object.values(this.inputs).forEach((i) => { i.value = ''; }); }

    // The card's fields, or an error in Stripe's words.
    card() {
      if (!this.inputs) return { error: 'The card element is not mounted.' };
      const number = this.inputs.number.value.replace(/[\s-]/g, '');
      const m = /^\s*(\d{1,2})\s*\/\s*(\d{2}|\d{4})\s*$/.exec(this.inputs.expiry.value);
      const cvc = this.inputs.cvc.value.trim();
      if (!/^\d{16}$/.test(number)) return { error: 'Your card number is incomplete.', code: 'incomplete_number' };
      if (!m || Number(m[1]) < 1 || Number(m[1]) > 12) return { error: "Your card's expiration date is incomplete.", code: 'incomplete_expiry' };
      if (!/^\d{3}$/.test(cvc)) return { error: "Your card's security code is incomplete.", code: 'incomplete_cvc' };
      return { number, exp_month: String(Number(m[1])), exp_year: m[2].length === 2 ? `20${m[2]}` : m[2], cvc };
    }

    complete() { return !this.card().error; }
  }

  // The bank's challenge: a modal dialog with two buttons (keyboard reachable, focus moved in).
  function challenge() {
    return new Promise((resolve) => {
      const dialog = document.createElement('dialog');
      dialog.setAttribute('aria-labelledby', 'souk-3ds-title');
      dialog.id = 'souk-3ds';
      const title = document.createElement('h2');
      title.id = 'souk-3ds-title';
      title.textContent = '3-D Secure (test bank)';
      const text = document.createElement('p');
      text.textContent = 'Confirm this payment as your bank would ask you to.';
      const ok = document.createElement('button');
      ok.type = 'button';
      ok.id = 'souk-3ds-complete';
      ok.textContent = 'Complete authentication';
      const fail = document.createElement('button');
      fail.type = 'button';
      fail.id = 'souk-3ds-fail';
      fail.textContent = 'Fail authentication';
      const done = (value) => { dialog.close(); dialog.remove(); resolve(value); };
      ok.addEventListener('click', () => done(true));
      fail.addEventListener('click', () => done(false));
      dialog.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
      dialog.append(title, text, ok, ' ', fail);
      document.body.append(dialog);
      dialog.showModal();
      ok.focus();
    });
  }

  function failure(body, fallback) {
    const e = body && body.error ? body.error : {};
    return { error: { type: e.type || 'api_error', code: e.code, decline_code: e.decline_code, message: e.message || fallback, payment_intent: e.payment_intent } };
  }

  window.Stripe = function Stripe(key) {
    if (typeof key !== 'string' || !key.startsWith('pk_')) throw new Error('Stripe(): a publishable key (pk_...) is required');
    async function authenticate(clientSecret) {
      const m = /^(pi_\w+?)_secret_/.exec(clientSecret || '');
      if (!m) return { error: { type: 'invalid_request_error', message: 'Invalid client secret.' } };
      const success = await challenge();
      const { ok, body } = await post(`/v1/payment_intents/${m[1]}/_authenticate?success=${success}`, { key, client_secret: clientSecret });
      if (!ok) return failure(body, 'The payment could not be confirmed.');
      if (body.status === 'requires_payment_method') {
        return { error: { type: 'card_error', code: 'payment_intent_authentication_failure', message: 'We are unable to authenticate your payment method. Please choose a different payment method and try again.', payment_intent: body } };
      }
      return { paymentIntent: body };
    }
    return {
      elements() {
        let card = null;
        return {
          create(type) {
            if (type !== 'card') throw new Error(`stand-in Stripe.js: only the card element exists, not ${type}`);
            if (card) throw new Error('Can only create one Element of type card');
            card = new CardElement();
            return card;
          },
          getElement() { return card; },
        };
      },
      async createPaymentMethod(options) {
        const { type, card, billing_details: billing } = options || {};
        if (type !== 'card' || !(card instanceof CardElement)) {
          return { error: { type: 'invalid_request_error', message: 'createPaymentMethod needs {type: "card", card: <card element>}' } };
        }
        const c = card.card();
        if (c.error) return { error: { type: 'validation_error', code: c.code, message: c.error } };
        const fields = { type: 'card', key, 'card[number]': c.number, 'card[exp_month]': c.exp_month, 'card[exp_year]': c.exp_year, 'card[cvc]': c.cvc };
        if (billing && billing.name) fields['billing_details[name]'] = billing.name;
        const { ok, body } = await post('/v1/payment_methods', fields);
        return ok ? { paymentMethod: body } : failure(body, 'The card was refused.');
      },
      confirmCardPayment: (clientSecret) => authenticate(clientSecret),
      handleNextAction: (options) => authenticate(options && options.clientSecret),
    };
  };
}());
