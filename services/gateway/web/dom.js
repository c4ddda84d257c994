// Building elements without innerHTML: every text from the API becomes a text node, so product
// names or addresses can never inject markup (and the CSP forbids inline script anyway).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'value') {
      el.value = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function money(cents, currency = 'usd') {
  return new Intl.NumberFormat('en-US', { style: 'currency', currency: currency.toUpperCase() })
    .format(cents / 100);
}

// A variant's options in words: ", size M, colour red"; "" for a product without options.
export function optionText(values) {
  const pairs = Object.entries(values || {});
  return pairs.length ? `, ${pairs.map(([k, v]) => `${k} ${v}`).join(', ')}` : '';
}

// "12.5" -> 1250 cents, exactly (no float arithmetic on money); null when not a price.
export function parseCents(text) {
  const m = /^\s*(\d{1,9})(?:[.,](\d{0,2}))?\s*$/.exec(text || '');
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] || '').padEnd(2, '0'));
}

// A promotion's discount in words: "20% off" or "$5.00 off".
export function promotionValue(p, currency) {
  if (p.kind === 'percent') return `${p.value}% off`;
  if (p.kind === 'amount') return `${money(p.value, currency)} off`;
  return '';
}

export function centsText(cents) {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}

export function date(iso) {
  return new Date(iso).toLocaleString('en-US', { dateStyle: 'medium', timeStyle: 'short' });
}

// A labelled form field; `errors` (from a 422) shows the message under the input.
export function field(label, input, hint) {
  const id = input.id || `f-${input.name}`;
  input.id = id;
  const err = h('span', { class: 'field-error', id: `${id}-error` });
  input.setAttribute('aria-describedby', `${id}-error`);
  return h('div', { class: 'field', 'data-field': input.name }, h('label', { for: id }, label), input, hint ? h('small', {}, hint) : null, err);
}

// Shows 422 field errors next to their inputs; returns whether any was shown.
export function showFieldErrors(form, problem) {
  form.querySelectorAll('.field-error').forEach((e) => { e.textContent = ''; });
  form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  let shown = false;
  for (const { field: name, message } of problem?.errors || []) {
    const short = name.replace(/^shipping_address\./, '');
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`) || form.querySelector(`[name="${CSS.escape(short)}"]`);
    if (!input) continue;
    input.setAttribute('aria-invalid', 'true');
    const err = document.getElementById(`${input.id}-error`);
    if (err) err.textContent = message;
    shown = true;
  }
  return shown;
}
