// Order history, detail, and cancelling where the API allows it.

import { h, replace, money, date, optionText } from './dom.js';
import { api, describe } from './api.js';

export const STATUS_WORDS = {
  pending: 'Waiting for payment',
  paid: 'Paid',
  payment_failed: 'Payment failed',
  shipped: 'Shipped',
  delivered: 'Delivered',
  cancelled: 'Cancelled',
};

export function statusBadge(status) {
  return h('span', { class: 'status', 'data-status': status }, STATUS_WORDS[status] || status);
}

export async function ordersPage(view, params) {
  const query = new URLSearchParams({ limit: '20' });
  if (params.get('cursor')) query.set('cursor', params.get('cursor'));
  const page = await api('GET', `/orders?${query}`);
  view.append(h('h1', {}, 'Your orders'));
  if (!page.items.length) {
    view.append(h('p', {}, 'No orders yet. ', h('a', { href: '#/' }, 'Browse the shop')));
    return;
  }
  view.append(h('div', { class: 'table-wrap' }, h('table', { id: 'orders' },
    h('thead', {}, h('tr', {}, ['Order', 'Placed', 'Status', 'Total'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, page.items.map((o) => h('tr', { 'data-order': o.id },
      h('td', {}, h('a', { href: `#/orders/${o.id}` }, `#${o.id.slice(0, 8)}`)),
      h('td', {}, date(o.created_at)),
      h('td', {}, statusBadge(o.status)),
      h('td', { class: 'num' }, money(o.total_cents, o.currency))))))));
  if (page.next_cursor) view.append(h('p', {}, h('a', { href: `#/orders?cursor=${encodeURIComponent(page.next_cursor)}` }, 'Older orders')));
}

export function orderDetail(o) {
  const a = o.shipping_address || {};
  const p = o.payment || {};
  // A discounted order shows each line's share, so what a partial refund gives back is visible.
  const discounted = o.discount_cents > 0 || Boolean(o.promotion_code);
  const amounts = discounted ? 4 : 3;
  const foot = (label, id, text) => h('tr', {}, h('th', { scope: 'row', colspan: amounts }, label), h('td', { class: 'num', id }, text));
  return [
    h('p', {}, 'Status: ', statusBadge(o.status), ` · placed ${date(o.created_at)}`),
    h('div', { class: 'table-wrap' }, h('table', { id: 'order-items' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col', class: 'num' }, 'Qty'),
        h('th', { scope: 'col', class: 'num' }, 'Price'), discounted ? h('th', { scope: 'col', class: 'num' }, 'Discount') : null,
        h('th', { scope: 'col', class: 'num' }, 'Total'))),
      h('tbody', {}, o.items.map((l) => h('tr', {}, h('td', {}, l.name, optionText(l.option_values), h('small', {}, ` (${l.sku})`)),
        h('td', { class: 'num' }, l.quantity), h('td', { class: 'num' }, money(l.unit_price_cents, o.currency)),
        discounted ? h('td', { class: 'num line-discount' }, l.discount_cents ? `−${money(l.discount_cents, o.currency)}` : '—') : null,
        h('td', { class: 'num' }, money(l.line_total_cents, o.currency))))),
      h('tfoot', {},
        discounted ? [
          foot('Subtotal', 'order-subtotal', money(o.subtotal_cents, o.currency)),
          foot(['Discount (code ', h('span', { id: 'order-promotion-code' }, o.promotion_code || ''), ')'], 'order-discount', `−${money(o.discount_cents, o.currency)}`),
        ] : null,
        foot('Total', 'order-total', money(o.total_cents, o.currency))))),
    h('div', { class: 'two' },
      h('section', { class: 'panel' }, h('h2', {}, 'Shipping to'),
        h('address', {}, [a.name, a.line1, a.line2, [a.postal_code, a.city].filter(Boolean).join(' '), a.state, a.country]
          .filter(Boolean).map((line) => [line, h('br')]))),
      h('section', { class: 'panel' }, h('h2', {}, 'Payment'),
        h('p', { id: 'payment-status' }, `Card payment: ${(p.status || 'pending').replace('_', ' ')}`),
        p.amount_refunded_cents ? h('p', {}, `Refunded ${money(p.amount_refunded_cents, o.currency)}`) : null)),
  ];
}

export async function orderPage(view, params, id) {
  const order = await api('GET', `/orders/${id}`);
  const draw = (o) => {
    replace(view,
      h('h1', {}, params.get('placed') && o.status === 'paid' ? 'Thank you for your order' : `Order #${o.id.slice(0, 8)}`),
      params.get('placed') ? h('p', { id: 'confirmation' }, `Order number ${o.id}. A confirmation e-mail is on its way.`) : null,
      orderDetail(o));
    if (o.status === 'pending' || o.status === 'paid') view.append(cancelControl(o, draw));
    view.append(h('p', {}, h('a', { href: '#/orders' }, 'All your orders')));
  };
  draw(order);
}

// Cancelling asks once more before it refunds anything.
function cancelControl(o, draw) {
  const alert = h('p', { class: 'error', role: 'alert' });
  const confirm = h('button', { type: 'button', class: 'danger', id: 'confirm-cancel', hidden: true },
    o.status === 'paid' ? 'Yes, cancel and refund' : 'Yes, cancel');
  const ask = h('button', { type: 'button', class: 'secondary', id: 'cancel-order' }, 'Cancel this order');
  ask.addEventListener('click', () => { confirm.hidden = false; confirm.focus(); });
  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    try {
      draw(await api('POST', `/orders/${o.id}/cancel`));
    } catch (e) {
      alert.textContent = describe(e);
      confirm.disabled = false;
    }
  });
  return h('section', { class: 'row' }, ask, confirm, alert);
}
