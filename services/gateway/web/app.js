// The storefront's shell: hash routes (#/product/<id>, ...) so the gateway serves one page and
// no page path can collide with the API; the header's navigation follows the session.

import { h, replace } from './dom.js';
import { onSession, signOut, user, describe } from './api.js';
import { home, product } from './shop.js';
import { signInPage, registerPage, accountPage } from './account.js';
import { cartPage, checkoutPage } from './cart.js';
import { ordersPage, orderPage } from './orders.js';
import { adminPage } from './admin.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const flashBox = document.getElementById('flash');

// A message that survives one navigation (e.g. "Signed out").
let pendingFlash = '';
export function flash(text) { pendingFlash = text; }

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const routes = [
  [/^\/?$/, home],
  [/^\/product\/([\w-]+)$/, product],
  [/^\/signin$/, signInPage],
  [/^\/register$/, registerPage],
  [/^\/account$/, accountPage],
  [/^\/cart$/, cartPage],
  [/^\/checkout$/, checkoutPage],
  [/^\/orders$/, ordersPage],
  [/^\/orders\/([\w-]+)$/, orderPage],
  [/^\/admin(?:\/(\w+))?(?:\/([\w-]+))?$/, adminPage],
];

// Pages that need a signed-in shopper send others to sign in first, then back.
const needsUser = new Set([accountPage, cartPage, checkoutPage, ordersPage, orderPage, adminPage]);

let generation = 0;

async function route() {
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query);
  // The header's search box shows the search being looked at, and empties elsewhere.
  document.getElementById('search-q').value = (path || '/') === '/' ? params.get('q') || '' : '';
  flashBox.textContent = pendingFlash;
  pendingFlash = '';
  renderNav();
  const mine = ++generation;
  for (const [pattern, page] of routes) {
    const m = pattern.exec(path || '/');
    if (!m) continue;
    if (needsUser.has(page) && !user()) {
      go(`#/signin?next=${encodeURIComponent(location.hash)}`);
      return;
    }
    const view = h('div', { class: 'view' });
    replace(main, h('p', {}, 'Loading…'));
    try {
      await page(view, params, ...m.slice(1));
    } catch (e) {
      replace(view, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, describe(e)));
    }
    // A later navigation won: drop this one's result.
    if (mine !== generation) return;
    replace(main, view);
    const title = view.querySelector('h1');
    document.title = title ? `${title.textContent} · Souk` : 'Souk';
    // Focus moves to the new content (screen readers announce it); the view starts at the top.
    main.focus({ preventScroll: true });
    window.scrollTo(0, 0);
    return;
  }
  replace(main, h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the shop')));
}

function renderNav() {
  const me = user();
  const items = [h('a', { href: '#/cart', id: 'nav-cart' }, 'Cart')];
  if (me) {
    items.push(h('a', { href: '#/orders', id: 'nav-orders' }, 'Orders'));
    items.push(h('a', { href: '#/account', id: 'nav-account' }, 'Account'));
    if (me.role === 'admin') items.push(h('a', { href: '#/admin', id: 'nav-admin' }, 'Back office'));
    items.push(h('button', {
      type: 'button', class: 'linkish', id: 'sign-out',
      onclick: async () => {
        try { await signOut(); flash('You are signed out.'); } catch (e) { flash(describe(e)); }
        go('#/');
      },
    }, 'Sign out'));
  } else {
    items.push(h('a', { href: '#/signin', id: 'nav-signin' }, 'Sign in'));
    items.push(h('a', { href: '#/register', id: 'nav-register' }, 'Register'));
  }
  replace(nav, items);
}

document.getElementById('search').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = new FormData(e.target).get('q').trim();
  go(q ? `#/?q=${encodeURIComponent(q)}` : '#/');
});

document.getElementById('skip-link').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

onSession(renderNav);
window.addEventListener('hashchange', route);
route();
