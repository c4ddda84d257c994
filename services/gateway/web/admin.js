// The back office. Only admins see it; the API enforces every rule on its own (these pages are
// no security boundary), so a refused call is shown as the API words it.

import { h, replace, money, parseCents, centsText, field, date } from './dom.js';
import { actionForm } from './forms.js';
import { api, user, reloadProfile, describe } from './api.js';
import { categories, categoryOptions, forgetCategories, tree } from './shop.js';
import { orderDetail, statusBadge, STATUS_WORDS } from './orders.js';
import { promotionsList, promotionNew, promotionPage } from './promotions.js';

const SECTIONS = [['products', 'Products'], ['categories', 'Categories'], ['orders', 'Orders'], ['promotions', 'Promotions'], ['users', 'Users']];

export async function adminPage(view, params, section = 'orders', id) {
  // The role may have changed since sign-in: ask the API, not the stored profile.
  const me = await reloadProfile();
  if (me.role !== 'admin') {
    view.append(h('h1', {}, 'Back office'), h('p', { class: 'error', role: 'alert', id: 'admin-refused' },
      'The back office is for administrators only. Your account is a customer account.'));
    return;
  }
  const pages = {
    products: id ? productEdit : productsList,
    categories: categoriesPage,
    orders: id ? adminOrder : ordersList,
    promotions: !id ? promotionsList : id === 'new' ? promotionNew : promotionPage,
    users: usersPage,
  };
  const page = pages[section];
  if (!page) { view.append(h('h1', {}, 'Back office'), h('p', {}, 'No such section.')); return; }
  view.append(h('nav', { class: 'admin-nav', 'aria-label': 'Back office' },
    SECTIONS.map(([key, label]) => h('a', { href: `#/admin/${key}`, 'aria-current': key === section ? 'page' : null, id: `nav-admin-${key}` }, label))));
  await page(view, params, id);
}

async function productsList(view, params) {
  const query = new URLSearchParams({ limit: '50' });
  for (const key of ['q', 'cursor']) if (params.get(key)) query.set(key, params.get(key));
  const page = await api('GET', `/products?${query}`);
  view.append(h('h1', {}, 'Products'), h('p', {}, h('a', { class: 'button', href: '#/admin/products/new', id: 'new-product' }, 'New product')),
    h('p', {}, 'Archived products are not listed (the catalog hides them); their orders keep their lines.'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'admin-products' },
      h('thead', {}, h('tr', {}, ['Name', 'SKU', 'Price', 'Stock'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, page.items.map((p) => h('tr', {},
        h('td', {}, h('a', { href: `#/admin/products/${p.id}` }, p.name)), h('td', {}, p.sku),
        h('td', { class: 'num' }, money(p.price_cents, p.currency)), h('td', { class: 'num' }, p.stock)))))));
  if (page.next_cursor) view.append(h('p', {}, h('a', { href: `#/admin/products?cursor=${encodeURIComponent(page.next_cursor)}` }, 'More products')));
}

async function productEdit(view, params, id) {
  const creating = id === 'new';
  const [p, cats] = await Promise.all([creating ? null : api('GET', `/products/${id}`), categories()]);
  const v = p || { sku: '', name: '', description: '', price_cents: 0, currency: 'usd', category_ids: [], stock: 0 };
  const catBoxes = h('fieldset', {}, h('legend', {}, 'Categories'), cats.map((c) => h('label', { class: 'row' },
    h('input', { type: 'checkbox', name: 'category_ids', value: c.id, checked: v.category_ids.includes(c.id) }), c.name)));
  const fields = [
    field('SKU', h('input', { name: 'sku', value: v.sku, maxlength: 64 })),
    field('Name', h('input', { name: 'name', value: v.name, maxlength: 200 })),
    field('Description', h('textarea', { name: 'description', rows: 4 }, v.description)),
    field('Price ($)', h('input', { name: 'price_cents', id: 'product-price-input', value: centsText(v.price_cents), inputmode: 'decimal' })),
    field('Currency', h('input', { name: 'currency', value: v.currency, maxlength: 3 })),
    creating ? field('Stock', h('input', { name: 'stock', type: 'number', min: 0, value: v.stock })) : null,
    field('Image URL (optional, https://…)', h('input', { name: 'image_url', type: 'url', value: v.image_url || '', maxlength: 2048 })),
    catBoxes,
  ];
  const body = (data) => {
    const cents = parseCents(data.get('price_cents'));
    if (cents === null) throw Object.assign(new Error('bad price'), { problem: { errors: [{ field: 'price_cents', message: 'an amount like 12 or 12.50' }] } });
    const out = {
      sku: data.get('sku').trim(), name: data.get('name').trim(), description: data.get('description'),
      price_cents: cents, currency: data.get('currency').trim().toLowerCase(), category_ids: data.getAll('category_ids'),
    };
    if (data.get('image_url').trim()) out.image_url = data.get('image_url').trim();
    else if (!creating && v.image_url) out.image_url = null;
    if (creating) out.stock = Number(data.get('stock'));
    return out;
  };
  view.append(h('h1', {}, creating ? 'New product' : `Edit ${v.name}`),
    actionForm('product-form', fields, creating ? 'Create product' : 'Save', async (data) => {
      const saved = await api(creating ? 'POST' : 'PATCH', creating ? '/products' : `/products/${id}`, { body: body(data) });
      if (creating) location.hash = `#/admin/products/${saved.id}`;
      return 'Saved.';
    }));
  if (creating) return;
  view.append(actionForm('stock-form', field('Units in stock', h('input', { name: 'stock', type: 'number', min: 0, value: v.stock, id: 'stock-input' })), 'Set stock', async (data) => {
    const saved = await api('PUT', `/products/${id}/stock`, { body: { stock: Number(data.get('stock')) } });
    return `Stock is now ${saved.stock}.`;
  }));
  const archive = h('button', { type: 'button', class: 'danger', id: 'archive-product', disabled: !v.active }, v.active ? 'Archive this product' : 'Archived');
  const alert = h('p', { role: 'alert', class: 'error' });
  archive.addEventListener('click', async () => {
    archive.disabled = true;
    try {
      await api('DELETE', `/products/${id}`);
      archive.textContent = 'Archived';
    } catch (e) {
      alert.textContent = describe(e);
      archive.disabled = false;
    }
  });
  view.append(h('section', { class: 'panel' }, h('h2', {}, 'Archive'), h('p', {}, 'Archived products leave the catalog; past orders keep them.'), archive, alert));
}

async function categoriesPage(view) {
  forgetCategories();
  const cats = await categories();
  const by = tree(cats);
  const rows = [];
  const walk = (parent, depth) => {
    for (const c of by.get(parent) || []) {
      const alert = h('span', { class: 'error', role: 'alert' });
      const del = h('button', { type: 'button', class: 'secondary' }, 'Delete');
      del.addEventListener('click', async () => {
        del.disabled = true;
        try {
          await api('DELETE', `/categories/${c.id}`);
          forgetCategories();
          location.hash = '#/admin/categories';
          view.replaceChildren();
          await adminPage(view, new URLSearchParams(), 'categories');
        } catch (e) { alert.textContent = describe(e); del.disabled = false; }
      });
      rows.push(h('tr', {}, h('td', {}, `${'\u2003'.repeat(depth)}${c.name}`), h('td', {}, c.slug), h('td', {}, del, alert)));
      walk(c.id, depth + 1);
    }
  };
  walk(null, 0);
  view.append(h('h1', {}, 'Categories'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'admin-categories' },
      h('thead', {}, h('tr', {}, ['Name', 'Slug', ''].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows))),
    actionForm('category-form', [
      h('h2', {}, 'New category'),
      field('Name', h('input', { name: 'name', maxlength: 100 })),
      field('Slug (lowercase-with-dashes)', h('input', { name: 'slug', maxlength: 100 })),
      field('Parent', h('select', { name: 'parent_id' }, categoryOptions(cats, '', 'None (top level)'))),
    ], 'Add category', async (data) => {
      const body = { name: data.get('name').trim(), slug: data.get('slug').trim() };
      if (data.get('parent_id')) body.parent_id = data.get('parent_id');
      await api('POST', '/categories', { body });
      forgetCategories();
      view.replaceChildren();
      await adminPage(view, new URLSearchParams(), 'categories');
      return 'Added.';
    }));
}

async function ordersList(view, params) {
  const query = new URLSearchParams({ limit: '50' });
  for (const key of ['status', 'cursor']) if (params.get(key)) query.set(key, params.get(key));
  const page = await api('GET', `/admin/orders?${query}`);
  const filter = h('form', { class: 'row', id: 'order-filter' },
    h('label', { for: 'status-filter' }, 'Status'),
    h('select', { id: 'status-filter', name: 'status' }, h('option', { value: '' }, 'Any'),
      Object.entries(STATUS_WORDS).map(([value, label]) => h('option', { value, selected: params.get('status') === value }, label))),
    h('button', { type: 'submit' }, 'Show'));
  filter.addEventListener('submit', (e) => {
    e.preventDefault();
    const s = new FormData(filter).get('status');
    location.hash = s ? `#/admin/orders?status=${s}` : '#/admin/orders';
  });
  view.append(h('h1', {}, 'Orders'), filter, page.items.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'admin-orders' },
    h('thead', {}, h('tr', {}, ['Order', 'Placed', 'Status', 'Total'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, page.items.map((o) => h('tr', { 'data-order': o.id },
      h('td', {}, h('a', { href: `#/admin/orders/${o.id}` }, `#${o.id.slice(0, 8)}`)), h('td', {}, date(o.created_at)),
      h('td', {}, statusBadge(o.status)), h('td', { class: 'num' }, money(o.total_cents, o.currency))))))) : h('p', {}, 'No orders.'));
  if (page.next_cursor) {
    const next = new URLSearchParams(params);
    next.set('cursor', page.next_cursor);
    view.append(h('p', {}, h('a', { href: `#/admin/orders?${next}` }, 'More orders')));
  }
}

const NEXT_STATUS = { paid: ['shipped', 'Mark as shipped'], shipped: ['delivered', 'Mark as delivered'] };

async function adminOrder(view, params, id) {
  const order = await api('GET', `/orders/${id}`);
  const box = h('div');
  const draw = (o) => {
    const alert = h('p', { class: 'error', role: 'alert', id: 'order-action-error' });
    const next = NEXT_STATUS[o.status];
    let action = null;
    if (next) {
      action = h('button', { type: 'button', id: `mark-${next[0]}` }, next[1]);
      action.addEventListener('click', async () => {
        action.disabled = true;
        try {
          draw(await api('PATCH', `/admin/orders/${o.id}`, { body: { status: next[0] } }));
        } catch (e) { alert.textContent = describe(e); action.disabled = false; }
      });
    }
    replace(box, h('h1', {}, `Order #${o.id.slice(0, 8)}`), orderDetail(o), h('p', { class: 'row' }, action, alert),
      o.status === 'paid' ? h('p', {}, 'Cancelling with a refund is the shopper’s action in this API version.') : null);
  };
  draw(order);
  view.append(box, h('p', {}, h('a', { href: '#/admin/orders' }, 'All orders')));
}

async function usersPage(view, params) {
  const query = new URLSearchParams({ limit: '50' });
  if (params.get('cursor')) query.set('cursor', params.get('cursor'));
  const page = await api('GET', `/admin/users?${query}`);
  const me = user();
  view.append(h('h1', {}, 'Users'), h('div', { class: 'table-wrap' }, h('table', { id: 'admin-users' },
    h('thead', {}, h('tr', {}, ['Name', 'E-mail', 'Role', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, page.items.map((u) => {
      const alert = h('span', { class: 'error', role: 'alert' });
      const role = h('td', {}, u.role);
      let action = null;
      if (u.role !== 'admin') {
        action = h('button', { type: 'button', class: 'secondary', 'data-email': u.email }, 'Make admin');
        action.addEventListener('click', async () => {
          action.disabled = true;
          try {
            const saved = await api('PATCH', `/admin/users/${u.id}`, { body: { role: 'admin' } });
            role.textContent = saved.role;
            action.remove();
          } catch (e) { alert.textContent = describe(e); action.disabled = false; }
        });
      }
      return h('tr', {}, h('td', {}, u.name), h('td', {}, u.email), role, h('td', {}, u.id === me?.id ? '(you)' : action, alert));
    })))));
  if (page.next_cursor) view.append(h('p', {}, h('a', { href: `#/admin/users?cursor=${encodeURIComponent(page.next_cursor)}` }, 'More users')));
}
