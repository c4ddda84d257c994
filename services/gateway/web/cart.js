// The cart and checkout. The card is typed into Stripe's card element and becomes a
// PaymentMethod in the browser; only its id reaches Souk.

import { h, money, showFieldErrors, promotionValue, optionText } from './dom.js';
import { api, reloadProfile, describe, promotionReason, ApiError } from './api.js';
import { addressFields, addressFrom } from './account.js';
import { go, flash } from './app.js';

export async function cartPage(view) {
  const cart = await api('GET', '/cart');
  view.append(h('h1', {}, 'Your cart'));
  renderCart(view, cart);
}

function renderCart(view, cart) {
  const status = h('p', { role: 'alert', class: 'error', id: 'cart-error' });
  const body = h('div', { id: 'cart' });
  const redraw = (next) => {
    body.replaceChildren();
    draw(next);
  };
  // `where` shows a refusal next to the control that asked (the promotion code's own box);
  // `focus` names what keyboard focus moves to once the cart is redrawn without the button.
  const act = async (button, call, { where = status, focus } = {}) => {
    button.disabled = true;
    status.textContent = '';
    where.textContent = '';
    try {
      redraw(await call());
      if (focus) body.querySelector(focus)?.focus();
    } catch (e) {
      where.textContent = describe(e);
      button.disabled = false;
    }
  };
  const draw = (c) => {
    if (!c.items.length) {
      body.append(h('p', { id: 'cart-empty' }, 'Your cart is empty. ', h('a', { href: '#/' }, 'Browse the shop')));
      return;
    }
    if (c.prices_stale) body.append(h('p', { class: 'stale' }, 'The catalog could not be reached: prices marked * are the last known ones and may change at checkout.'));
    body.append(h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Items in your cart'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col', class: 'num' }, 'Price'),
        h('th', { scope: 'col' }, 'Quantity'), h('th', { scope: 'col', class: 'num' }, 'Total'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', {}, c.items.map((line) => {
        const qty = h('input', { type: 'number', min: 0, max: 100, value: line.quantity, id: `qty-${line.variant_id}`, class: 'qty', inputmode: 'numeric' });
        const update = h('button', { type: 'button', class: 'secondary update' }, 'Update');
        update.addEventListener('click', () => act(update, () => api('PATCH', `/cart/items/${line.variant_id}`, { body: { quantity: Number(qty.value) } })));
        const remove = h('button', { type: 'button', class: 'secondary remove' }, 'Remove');
        remove.addEventListener('click', () => act(remove, () => api('DELETE', `/cart/items/${line.variant_id}`)));
        return h('tr', { 'data-product': line.product_id, 'data-variant': line.variant_id },
          h('td', {}, h('a', { href: `#/product/${line.product_id}` }, line.name), optionText(line.option_values),
            line.available === false ? h('span', { class: 'stale' }, ' — no longer available') : null),
          h('td', { class: 'num' }, money(line.unit_price_cents, c.currency), line.price_stale ? h('span', { class: 'stale', title: 'last known price' }, ' *') : null),
          h('td', {}, h('label', { for: qty.id, class: 'visually-hidden' }, `Quantity of ${line.name}`), qty, ' ', update),
          h('td', { class: 'num' }, money(line.line_total_cents, c.currency)),
          h('td', {}, remove));
      })),
      h('tfoot', {}, totalRows(c)))),
    promotionBox(c, act),
    h('p', {}, h('a', { href: '#/checkout', class: 'button', id: 'checkout-link' }, 'Check out')));
  };
  draw(cart);
  view.append(status, body);
}

// Subtotal, the promotion's discount when it takes something off, and the total, as table
// rows (the cart's table has an actions column after the amounts).
function totalRows(c) {
  const row = (label, id, text) => h('tr', {}, h('th', { scope: 'row', colspan: 3 }, label),
    h('td', { class: 'num', id: `cart-${id}` }, text), h('td', {}));
  return [
    row('Subtotal', 'subtotal', money(c.subtotal_cents, c.currency)),
    c.discount_cents > 0 ? row(`Discount (${c.promotion.code})`, 'discount', `−${money(c.discount_cents, c.currency)}`) : null,
    row('Total', 'total', money(c.total_cents, c.currency)),
  ];
}

// The promotion code: a field to apply one, or the applied one with a button to remove it.
// `act` runs the call, redraws the cart with its answer, and shows a refusal in words.
function promotionBox(c, act) {
  const error = h('p', { class: 'error', role: 'alert', id: 'promo-error' });
  if (c.promotion) {
    const p = c.promotion;
    const remove = h('button', { type: 'button', class: 'secondary', id: 'promo-remove' }, 'Remove code');
    remove.addEventListener('click', () => act(remove, () => api('DELETE', '/cart/promotion'), { where: error, focus: '#promo-code' }));
    let state = null;
    if (p.applicable === false) state = h('p', { class: 'stale', id: 'promo-state' }, `It does not apply now: ${promotionReason(p.reason)}.`);
    else if (p.applicable === null) state = h('p', { class: 'stale', id: 'promo-state' }, 'Its discount cannot be worked out right now; checkout will apply it if it still can.');
    return h('section', { class: 'panel promo', 'aria-labelledby': 'promo-h' },
      h('h2', { id: 'promo-h' }, 'Promotion code'),
      h('p', { class: 'row' }, h('strong', { id: 'promo-applied' }, p.code), p.kind ? ` ${promotionValue(p, c.currency)}` : null, remove),
      state, error);
  }
  const input = h('input', {
    name: 'code', id: 'promo-code', maxlength: 64, autocomplete: 'off', autocapitalize: 'characters',
    spellcheck: 'false', 'aria-describedby': 'promo-error',
  });
  const apply = h('button', { type: 'submit', class: 'secondary', id: 'promo-apply' }, 'Apply');
  const form = h('form', { class: 'panel promo', id: 'promo-form', novalidate: true },
    h('label', { for: 'promo-code' }, 'Promotion code'), h('div', { class: 'row' }, input, apply), error);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const code = input.value.trim();
    if (!code) { error.textContent = 'Type a code first.'; input.focus(); return; }
    act(apply, () => api('PUT', '/cart/promotion', { body: { code } }), { where: error, focus: '#promo-remove' });
  });
  return form;
}

// Stripe.js, loaded once from the configured URL (Stripe's own, or the emulator's stand-in).
let stripePromise = null;
function loadStripe() {
  if (!stripePromise) {
    stripePromise = (async () => {
      const res = await fetch('/storefront/config.json');
      const config = await res.json();
      if (!config.stripe_js_url || !config.stripe_publishable_key) return null;
      if (!window.Stripe) {
        await new Promise((resolve, reject) => {
          const script = document.createElement('script');
          script.src = config.stripe_js_url;
          script.onload = resolve;
          script.onerror = () => reject(new Error('Stripe.js could not be loaded'));
          document.head.append(script);
        });
      }
      return window.Stripe(config.stripe_publishable_key);
    })();
    stripePromise.catch(() => { stripePromise = null; });
  }
  return stripePromise;
}

export async function checkoutPage(view) {
  const [cart, me, stripe] = await Promise.all([api('GET', '/cart'), reloadProfile(), loadStripe()]);
  view.append(h('h1', {}, 'Checkout'));
  if (!cart.items.length) {
    view.append(h('p', {}, 'Your cart is empty. ', h('a', { href: '#/' }, 'Browse the shop')));
    return;
  }
  if (!stripe) {
    view.append(h('p', { class: 'error', role: 'alert' }, 'Payments are not set up in this shop yet, so orders cannot be placed.'));
    return;
  }
  const summary = h('section', { class: 'panel', 'aria-labelledby': 'summary-h' },
    h('h2', { id: 'summary-h' }, 'Order summary'),
    h('ul', {}, cart.items.map((l) => h('li', {}, `${l.quantity} × ${l.name}${optionText(l.option_values)} — ${money(l.line_total_cents, cart.currency)}`))),
    cart.discount_cents > 0 ? [
      h('p', {}, 'Subtotal ', h('span', { id: 'checkout-subtotal' }, money(cart.subtotal_cents, cart.currency))),
      h('p', {}, `Discount (${cart.promotion.code}) `, h('span', { id: 'checkout-discount' }, `−${money(cart.discount_cents, cart.currency)}`)),
    ] : null,
    cart.promotion && cart.promotion.applicable === false
      ? h('p', { class: 'stale', id: 'checkout-promo-state' }, `Your code ${cart.promotion.code} does not apply: ${promotionReason(cart.promotion.reason)}. `,
        h('a', { href: '#/cart' }, 'Remove it in your cart'), ' to place the order.')
      : null,
    h('p', { class: 'price' }, 'Total ', h('span', { id: 'checkout-total' }, money(cart.total_cents, cart.currency))),
    cart.prices_stale ? h('p', { class: 'stale' }, 'Prices may change: the final price is the one when your order is placed.') : null);

  const elements = stripe.elements();
  const card = elements.create('card');
  const cardBox = h('div', { id: 'card-element', class: 'card-element' });
  const alert = h('p', { class: 'error', role: 'alert', id: 'checkout-error' });
  const progress = h('p', { role: 'status', id: 'checkout-status' });
  const pay = h('button', { type: 'submit', id: 'pay' }, `Pay ${money(cart.total_cents, cart.currency)}`);
  const form = h('form', { class: 'stack panel', id: 'checkout-form', novalidate: true },
    h('h2', {}, 'Ship to'), addressFields(me.shipping_address),
    h('h2', { id: 'card-h' }, 'Card'), cardBox, alert, progress, pay);

  // One Idempotency-Key per attempt: kept while an attempt may still be in flight (a retry after
  // a lost answer replays the same order), replaced once the server has given a final answer.
  let attemptKey = null;
  let busy = false;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (busy) return; // a double click places one order
    busy = true;
    pay.disabled = true;
    alert.textContent = '';
    progress.textContent = 'Paying…';
    try {
      const { paymentMethod, error } = await stripe.createPaymentMethod({ type: 'card', card });
      if (error) throw new Error(error.message || 'The card details are not valid.');
      attemptKey = attemptKey || crypto.randomUUID();
      let order;
      try {
        order = await api('POST', '/checkout', {
          headers: { 'idempotency-key': attemptKey },
          body: { payment_method: paymentMethod.id, shipping_address: addressFrom(new FormData(form)) },
        });
      } catch (err) {
        if (err instanceof ApiError && err.status !== 0 && err.status < 500) attemptKey = null;
        throw err;
      }
      attemptKey = null;
      if (order.payment?.status === 'requires_action' && order.payment.client_secret) {
        progress.textContent = 'Your bank asks you to confirm this payment…';
        const result = await stripe.confirmCardPayment(order.payment.client_secret);
        if (result.error) {
          progress.textContent = '';
          alert.textContent = `The payment was not confirmed: ${result.error.message || 'authentication failed'}. Order ${order.id.slice(0, 8)} was not paid.`;
          return;
        }
        progress.textContent = 'Confirmed. Waiting for the payment to settle…';
        order = await settle(order.id);
      }
      flash(order.status === 'paid' ? 'Thank you! Your order is placed and paid.' : `Your order is ${order.status.replace('_', ' ')}.`);
      go(`#/orders/${order.id}?placed=1`);
    } catch (err) {
      progress.textContent = '';
      if (!(err instanceof ApiError)) alert.textContent = err.message;
      else if (err.status === 422 && showFieldErrors(form, err.problem)) alert.textContent = 'Please correct the address above.';
      else alert.textContent = describe(err);
    } finally {
      busy = false;
      pay.disabled = false;
    }
  });
  view.append(h('div', { class: 'two' }, form, summary));
  card.mount(cardBox);
}

// After 3-D Secure the order settles from Stripe's webhook: ask until it is no longer pending.
async function settle(id) {
  let order;
  for (let i = 0; i < 40; i += 1) {
    order = await api('GET', `/orders/${id}`);
    if (order.status !== 'pending') return order;
    await new Promise((r) => setTimeout(r, 500));
  }
  return order;
}
