// The back office's promotions: the list, a new promotion, and one promotion with its
// redemptions, its changes (active, end, usage limit) and batches of single-use codes.
// The API checks every field; the hints here only say what it will accept.

import { h, replace, money, parseCents, field, date, promotionValue } from './dom.js';
import { api, describe } from './api.js';
import { actionForm } from './forms.js';
import { categories } from './shop.js';

const MAX_BATCH = 10000;
// Products named on the detail page; beyond that the count says it.
const NAMED_PRODUCTS = 20;

// Where a promotion stands now, in words.
function stateOf(p) {
  const now = Date.now();
  if (!p.active) return 'Inactive';
  if (p.ends_at && Date.parse(p.ends_at) <= now) return 'Expired';
  if (p.starts_at && Date.parse(p.starts_at) > now) return 'Scheduled';
  if (p.usage_limit !== null && p.redemptions >= p.usage_limit) return 'Used up';
  return 'Active';
}

function usage(p) {
  return p.usage_limit === null ? `${p.redemptions}` : `${p.redemptions} of ${p.usage_limit}`;
}

export async function promotionsList(view, params) {
  const query = new URLSearchParams({ limit: '50' });
  if (params.get('cursor')) query.set('cursor', params.get('cursor'));
  const page = await api('GET', `/promotions?${query}`);
  view.append(h('h1', {}, 'Promotions'),
    h('p', {}, h('a', { class: 'button', href: '#/admin/promotions/new', id: 'new-promotion' }, 'New promotion')));
  if (!page.items.length) {
    view.append(h('p', { id: 'no-promotions' }, 'No promotions yet.'));
    return;
  }
  view.append(h('div', { class: 'table-wrap' }, h('table', { id: 'admin-promotions' },
    h('thead', {}, h('tr', {}, ['Code', 'Discount', 'Status', 'Redemptions', 'Single-use codes (used)', 'Ends']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, page.items.map((p) => h('tr', { 'data-promotion': p.id },
      h('td', {}, h('a', { href: `#/admin/promotions/${p.id}` }, p.code)),
      h('td', {}, promotionValue(p)),
      h('td', {}, h('span', { class: 'status' }, stateOf(p))),
      h('td', { class: 'num' }, usage(p)),
      h('td', { class: 'num' }, `${p.single_use_codes} (${p.single_use_codes_used})`),
      h('td', {}, p.ends_at ? date(p.ends_at) : 'No end')))))));
  if (page.next_cursor) view.append(h('p', {}, h('a', { href: `#/admin/promotions?cursor=${encodeURIComponent(page.next_cursor)}` }, 'More promotions')));
}

// Field errors found before asking the API, shown the way its 422 would be.
function invalid(errors) {
  return Object.assign(new Error('invalid input'), { problem: { errors } });
}

function wholeNumber(text) {
  return /^\s*\d{1,10}\s*$/.test(text) ? Number(text) : null;
}

// `<input type="datetime-local">` speaks the browser's local time without a zone.
function localInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function fromLocalInput(text) {
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

// Checkboxes for a list of ids; the first box carries the field's id, so a 422 naming the
// field shows its message here (showFieldErrors looks for `<id>-error`).
function idChoices(name, legend, hint, items) {
  const boxes = items.map((item, i) => h('label', { class: 'row' },
    h('input', { type: 'checkbox', name, value: item.id, id: i === 0 ? `f-${name}` : `f-${name}-${i}` }), item.label));
  return h('fieldset', { class: 'choices', 'data-field': name }, h('legend', {}, legend), h('small', {}, hint),
    boxes.length ? h('div', { class: 'choice-list' }, boxes) : h('p', {}, 'None to choose from.'),
    h('span', { class: 'field-error', id: `f-${name}-error` }));
}

export async function promotionNew(view) {
  const [products, cats] = await Promise.all([api('GET', '/products?limit=100'), categories()]);
  const valueHint = h('small', { id: 'value-hint' });
  const value = h('input', { name: 'value', inputmode: 'decimal', required: true });
  const kind = h('select', { name: 'kind' },
    h('option', { value: 'percent' }, 'Percent off the eligible items'),
    h('option', { value: 'amount' }, 'Amount off the eligible items'));
  const hintKind = () => {
    valueHint.textContent = kind.value === 'percent' ? 'A whole number from 1 to 100.' : 'An amount like 5 or 5.50, in dollars.';
  };
  kind.addEventListener('change', hintKind);
  hintKind();
  const valueField = field('Value', value);
  valueField.insertBefore(valueHint, valueField.querySelector('.field-error'));
  const fields = [
    field('Code', h('input', { name: 'code', maxlength: 64, required: true, autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false' }),
      '3 to 64 letters, digits, - or _. Shoppers may type it in any case.'),
    field('Kind', kind),
    valueField,
    field('Minimum subtotal ($, optional)', h('input', { name: 'min_subtotal_cents', inputmode: 'decimal' }), 'The cart must reach this before the code applies.'),
    field('Starts (optional)', h('input', { name: 'starts_at', type: 'datetime-local' }), 'Your local time. Empty: from now.'),
    field('Ends (optional)', h('input', { name: 'ends_at', type: 'datetime-local' }), 'Your local time. Empty: no end.'),
    field('Usage limit (optional)', h('input', { name: 'usage_limit', type: 'number', min: 1, inputmode: 'numeric' }), 'Orders that may use it in all. Empty: no limit.'),
    field('Per-customer limit (optional)', h('input', { name: 'per_customer_limit', type: 'number', min: 1, inputmode: 'numeric' }), 'Orders each customer may use it for. Empty: no limit.'),
    idChoices('product_ids', 'Only these products (optional)', 'None chosen: every product.',
      products.items.map((p) => ({ id: p.id, label: `${p.name} (${p.sku})` }))),
    idChoices('category_ids', 'Only these categories (optional)', 'None chosen: every category.',
      cats.map((c) => ({ id: c.id, label: c.name }))),
  ];
  const body = (data) => {
    const errors = [];
    const out = { code: data.get('code').trim(), kind: data.get('kind') };
    const text = data.get('value');
    out.value = out.kind === 'percent' ? wholeNumber(text) : parseCents(text);
    if (out.value === null) errors.push({ field: 'value', message: out.kind === 'percent' ? 'a whole number, like 20' : 'an amount like 5 or 5.50' });
    if (data.get('min_subtotal_cents').trim()) {
      out.min_subtotal_cents = parseCents(data.get('min_subtotal_cents'));
      if (out.min_subtotal_cents === null) errors.push({ field: 'min_subtotal_cents', message: 'an amount like 50 or 49.90' });
    }
    for (const name of ['starts_at', 'ends_at']) {
      if (!data.get(name)) continue;
      out[name] = fromLocalInput(data.get(name));
      if (out[name] === null) errors.push({ field: name, message: 'a date and time' });
    }
    for (const name of ['usage_limit', 'per_customer_limit']) {
      if (!data.get(name).trim()) continue;
      out[name] = wholeNumber(data.get(name));
      if (out[name] === null) errors.push({ field: name, message: 'a whole number, or empty' });
    }
    for (const name of ['product_ids', 'category_ids']) {
      const ids = data.getAll(name);
      if (ids.length) out[name] = ids;
    }
    if (errors.length) throw invalid(errors);
    return out;
  };
  view.append(h('h1', {}, 'New promotion'),
    products.next_cursor ? h('p', {}, 'Only the first 100 products are offered below.') : null,
    actionForm('promotion-form', fields, 'Create promotion', async (data) => {
      let made;
      try {
        made = await api('POST', '/promotions', { body: body(data) });
      } catch (e) {
        // A taken code belongs next to the code field, like the 422s.
        if (e.code === 'code_taken') throw invalid([{ field: 'code', message: describe(e) }]);
        throw e;
      }
      location.hash = `#/admin/promotions/${made.id}`;
      return 'Created.';
    }));
}

// The names of the products a promotion is limited to (the first few; the count says the rest).
async function productNames(ids) {
  const named = await Promise.all(ids.slice(0, NAMED_PRODUCTS).map((id) => api('GET', `/products/${id}`)
    .then((p) => p.name, () => id)));
  const more = ids.length - named.length;
  return more > 0 ? `${named.join(', ')} and ${more} more` : named.join(', ');
}

function details(p, productText, categoryText) {
  const row = (label, id, value) => [h('dt', {}, label), h('dd', { id }, value)];
  return h('dl', { class: 'details panel', id: 'promotion-details' },
    row('Discount', 'promotion-value', promotionValue(p)),
    row('Status', 'promotion-state', h('span', { class: 'status' }, stateOf(p))),
    row('Minimum subtotal', 'promotion-min', p.min_subtotal_cents ? money(p.min_subtotal_cents) : 'None'),
    row('Starts', 'promotion-starts', p.starts_at ? date(p.starts_at) : 'When created'),
    row('Ends', 'promotion-ends', p.ends_at ? date(p.ends_at) : 'No end'),
    row('Redemptions', 'promotion-redemptions', `${usage(p)} (orders holding it now; failed and cancelled orders gave theirs back)`),
    row('Usage limit', 'promotion-usage-limit', p.usage_limit === null ? 'No limit' : String(p.usage_limit)),
    row('Per-customer limit', 'promotion-customer-limit', p.per_customer_limit === null ? 'No limit' : String(p.per_customer_limit)),
    row('Single-use codes', 'promotion-codes', `${p.single_use_codes} generated, ${p.single_use_codes_used} used`),
    row('Products', 'promotion-products', productText || 'All'),
    row('Categories', 'promotion-categories', categoryText || 'All'),
    row('Created', 'promotion-created', date(p.created_at)));
}

export async function promotionPage(view, params, id) {
  let current = await api('GET', `/promotions/${id}`);
  const [productText, cats] = await Promise.all([productNames(current.product_ids), categories()]);
  const catName = new Map(cats.map((c) => [c.id, c.name]));
  const categoryText = current.category_ids.map((c) => catName.get(c) || c).join(', ');
  const box = h('div');
  // Deactivating stops new redemptions at once; orders that hold one keep it.
  const toggle = h('button', { type: 'button', class: 'secondary', id: 'promotion-active-toggle' });
  const toggleAlert = h('p', { class: 'error', role: 'alert', id: 'promotion-active-error' });
  const show = (p) => {
    current = p;
    replace(box, details(p, productText, categoryText));
    toggle.textContent = p.active ? 'Deactivate' : 'Activate again';
  };
  toggle.addEventListener('click', async () => {
    toggle.disabled = true;
    toggleAlert.textContent = '';
    try {
      show(await api('PATCH', `/promotions/${id}`, { body: { active: !current.active } }));
    } catch (e) {
      toggleAlert.textContent = describe(e);
    } finally {
      toggle.disabled = false;
    }
  });

  const ends = h('input', { name: 'ends_at', type: 'datetime-local', value: localInput(current.ends_at) });
  const limit = h('input', { name: 'usage_limit', type: 'number', min: 1, inputmode: 'numeric', value: current.usage_limit ?? '' });
  // Only what changed is sent: the minute-precise input must not cut seconds off an end date
  // nobody touched.
  const edit = actionForm('promotion-edit', [
    h('h2', {}, 'Change'),
    field('Ends', ends, 'Your local time. Empty: no end.'),
    field('Usage limit', limit, 'Orders that may use it in all. Lowering it below the redemptions takes none back. Empty: no limit.'),
  ], 'Save changes', async (data) => {
    const change = {};
    if (data.get('ends_at') !== localInput(current.ends_at)) {
      change.ends_at = data.get('ends_at') ? fromLocalInput(data.get('ends_at')) : null;
      if (change.ends_at === null && data.get('ends_at')) throw invalid([{ field: 'ends_at', message: 'a date and time' }]);
    }
    const limitText = data.get('usage_limit').trim();
    if (limitText !== String(current.usage_limit ?? '')) {
      change.usage_limit = limitText ? wholeNumber(limitText) : null;
      if (change.usage_limit === null && limitText) throw invalid([{ field: 'usage_limit', message: 'a whole number, or empty' }]);
    }
    if (!Object.keys(change).length) return 'Nothing to change.';
    show(await api('PATCH', `/promotions/${id}`, { body: change }));
    return 'Saved.';
  });

  const output = h('div', { id: 'codes-output' });
  let csvUrl = null;
  const codes = actionForm('codes-form', [
    h('h2', {}, 'Single-use codes'),
    h('p', {}, `Each code is good for one order and gives this promotion's discount under its rules. Codes are shown once, here: copy or download them before leaving the page.`),
    field('How many', h('input', { name: 'count', type: 'number', min: 1, max: MAX_BATCH, value: 10, inputmode: 'numeric' }), `1 to ${MAX_BATCH.toLocaleString('en-US')}.`),
  ], 'Generate codes', async (data) => {
    const count = wholeNumber(data.get('count'));
    if (count === null) throw invalid([{ field: 'count', message: `a whole number from 1 to ${MAX_BATCH}` }]);
    const made = await api('POST', `/promotions/${id}/codes`, { body: { count } });
    if (csvUrl) URL.revokeObjectURL(csvUrl);
    // Generated codes are capital letters and digits only: no CSV quoting is needed.
    csvUrl = URL.createObjectURL(new Blob([`code\r\n${made.codes.join('\r\n')}\r\n`], { type: 'text/csv' }));
    const list = h('textarea', { id: 'generated-codes', readonly: true, rows: Math.min(made.codes.length, 12), spellcheck: 'false' }, made.codes.join('\n'));
    const copyStatus = h('span', { role: 'status', id: 'copy-status' });
    const copy = h('button', { type: 'button', class: 'secondary', id: 'copy-codes' }, 'Copy all');
    copy.addEventListener('click', async () => {
      list.select();
      try {
        await navigator.clipboard.writeText(list.value);
        copyStatus.textContent = 'Copied.';
      } catch {
        copyStatus.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
      }
    });
    replace(output, h('label', { for: 'generated-codes' }, `${made.codes.length} new codes`), list,
      h('p', { class: 'row' }, copy, h('a', { class: 'button', id: 'download-codes', href: csvUrl, download: `${current.code}-codes.csv` }, 'Download .csv'), copyStatus));
    show(await api('GET', `/promotions/${id}`));
    return `${made.codes.length} codes generated.`;
  });

  codes.append(output);
  show(current);
  view.append(h('h1', {}, `Promotion ${current.code}`),
    h('div', { class: 'two' }, box, h('div', {},
      h('section', { class: 'panel' }, h('h2', {}, 'Active'),
        h('p', {}, 'An inactive promotion applies to no new order; orders that used it keep their discount.'), toggle, toggleAlert),
      edit)),
    codes,
    h('p', {}, h('a', { href: '#/admin/promotions' }, 'All promotions')));
}
