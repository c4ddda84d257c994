// Register, sign in, and the profile with its shipping address.

import { h, field, showFieldErrors } from './dom.js';
import { api, register, signIn, reloadProfile, describe } from './api.js';
import { flash, go } from './app.js';

// Only a path inside this page (#/...) is followed after signing in.
function nextHash(params) {
  const next = params.get('next') || '';
  return next.startsWith('#/') && !next.startsWith('#/signin') ? next : '#/';
}

function authForm(id, fields, submitLabel, onSubmit) {
  const alert = h('p', { class: 'error', role: 'alert', id: `${id}-error` });
  const button = h('button', { type: 'submit', id: `${id}-submit` }, submitLabel);
  const form = h('form', { class: 'stack panel', id, novalidate: true }, fields, alert, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    alert.textContent = '';
    try {
      await onSubmit(new FormData(form));
    } catch (err) {
      if (!showFieldErrors(form, err.problem)) alert.textContent = describe(err);
      else alert.textContent = 'Please correct the fields marked above.';
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function signInPage(view, params) {
  view.append(h('h1', {}, 'Sign in'), authForm('signin-form', [
    field('E-mail', h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true })),
    field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
  ], 'Sign in', async (data) => {
    const me = await signIn(data.get('email'), data.get('password'));
    flash(`Welcome back, ${me.name}.`);
    go(nextHash(params));
  }), h('p', {}, 'New here? ', h('a', { href: `#/register?next=${encodeURIComponent(params.get('next') || '')}` }, 'Create an account')));
}

export async function registerPage(view, params) {
  view.append(h('h1', {}, 'Create an account'), authForm('register-form', [
    field('Name', h('input', { name: 'name', autocomplete: 'name', required: true, maxlength: 200 })),
    field('E-mail', h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true })),
    field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }), 'At least 8 characters.'),
  ], 'Create account', async (data) => {
    const me = await register(data.get('name'), data.get('email'), data.get('password'));
    flash(`Welcome, ${me.name}.`);
    go(nextHash(params));
  }));
}

export function addressFields(address) {
  const a = address || {};
  const input = (name, label, attrs = {}) => field(label, h('input', { name, id: `addr-${name}`, value: a[name] || '', ...attrs }));
  return [
    input('name', 'Full name', { autocomplete: 'shipping name', maxlength: 200 }),
    input('line1', 'Address', { autocomplete: 'shipping address-line1', maxlength: 200 }),
    input('line2', 'Address line 2 (optional)', { autocomplete: 'shipping address-line2', maxlength: 200 }),
    input('city', 'City', { autocomplete: 'shipping address-level2', maxlength: 100 }),
    input('state', 'State or region (optional)', { autocomplete: 'shipping address-level1', maxlength: 200 }),
    input('postal_code', 'Postal code', { autocomplete: 'shipping postal-code', maxlength: 20 }),
    input('country', 'Country (two letters, e.g. US)', { autocomplete: 'shipping country', maxlength: 2 }),
  ];
}

export function addressFrom(data) {
  const out = {};
  for (const key of ['name', 'line1', 'line2', 'city', 'state', 'postal_code', 'country']) {
    const value = (data.get(key) || '').trim();
    if (value) out[key] = value;
  }
  return out;
}

export async function accountPage(view) {
  const me = await reloadProfile();
  const status = h('p', { role: 'status', id: 'profile-status' });
  const alert = h('p', { class: 'error', role: 'alert', id: 'profile-error' });
  const button = h('button', { type: 'submit', id: 'profile-save' }, 'Save');
  const form = h('form', { class: 'stack panel', id: 'profile-form', novalidate: true },
    field('Your name', h('input', { name: 'display_name', id: 'profile-name', value: me.name, autocomplete: 'name', maxlength: 200 })),
    h('h2', {}, 'Shipping address'),
    addressFields(me.shipping_address),
    alert, status, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    status.textContent = '';
    alert.textContent = '';
    const data = new FormData(form);
    try {
      await api('PATCH', '/users/me', { body: { name: data.get('display_name').trim(), shipping_address: addressFrom(data) } });
      await reloadProfile();
      showFieldErrors(form, null);
      status.textContent = 'Saved.';
    } catch (err) {
      alert.textContent = showFieldErrors(form, err.problem) ? 'Please correct the fields marked above.' : describe(err);
    } finally {
      button.disabled = false;
    }
  });
  view.append(h('h1', {}, 'Your account'), h('p', {}, `Signed in as ${me.email}.`), form);
}
