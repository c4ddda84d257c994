// Catalog: home (category tree, search, filters, sort, cursor paging) and the product page.

import { h, money, parseCents, centsText } from './dom.js';
import { api, user, describe } from './api.js';

let categoriesCache = null;
export async function categories() {
  if (!categoriesCache) categoriesCache = (await api('GET', '/categories')).items;
  return categoriesCache;
}
export function forgetCategories() { categoriesCache = null; }

// Children by parent id (null for the top level), each level sorted by name.
export function tree(list) {
  const by = new Map();
  for (const c of list) {
    const key = c.parent_id || null;
    if (!by.has(key)) by.set(key, []);
    by.get(key).push(c);
  }
  for (const kids of by.values()) kids.sort((a, b) => a.name.localeCompare(b.name));
  return by;
}

// Options for a <select>, indented by depth.
export function categoryOptions(list, selected, emptyLabel) {
  const by = tree(list);
  const out = emptyLabel ? [h('option', { value: '' }, emptyLabel)] : [];
  const walk = (parent, depth) => {
    for (const c of by.get(parent) || []) {
      out.push(h('option', { value: c.id, selected: c.id === selected }, `${'\u2003'.repeat(depth)}${c.name}`));
      walk(c.id, depth + 1);
    }
  };
  walk(null, 0);
  return out;
}

function treeList(by, parent, current, params) {
  const kids = by.get(parent) || [];
  if (!kids.length) return null;
  return h('ul', { class: parent ? '' : 'tree' }, kids.map((c) => {
    const p = new URLSearchParams(params);
    p.set('category', c.id);
    p.delete('cursor');
    return h('li', {},
      h('a', { href: `#/?${p}`, 'aria-current': c.id === current ? 'true' : null }, c.name),
      treeList(by, c.id, current, params));
  }));
}

export function availability(p) {
  if (!p.active) return h('span', { class: 'stock-low' }, 'No longer sold');
  if (p.stock <= 0) return h('span', { class: 'stock-low' }, 'Out of stock');
  if (p.stock <= 5) return h('span', { class: 'stock-low' }, `Only ${p.stock} left`);
  return h('span', { class: 'stock-ok' }, 'In stock');
}

function image(p, cls) {
  return p.image_url ? h('img', { src: p.image_url, alt: '', class: cls, loading: 'lazy' }) : null;
}

export async function home(view, params) {
  const filters = new URLSearchParams();
  for (const key of ['q', 'category', 'sort', 'cursor']) if (params.get(key)) filters.set(key, params.get(key));
  for (const key of ['min_price', 'max_price']) if (params.get(key)) filters.set(key, params.get(key));
  filters.set('limit', '12');
  const [cats, page] = await Promise.all([categories(), api('GET', `/products?${filters}`)]);
  const by = tree(cats);
  const current = params.get('category') || '';
  const heading = params.get('q') ? `Results for “${params.get('q')}”`
    : current ? (cats.find((c) => c.id === current)?.name || 'Products') : 'All products';

  const form = h('form', { class: 'filters', id: 'filters', 'aria-label': 'Filters' },
    h('h2', {}, 'Filter'),
    h('label', { for: 'filter-category' }, 'Category'),
    h('select', { id: 'filter-category', name: 'category' }, categoryOptions(cats, current, 'All categories')),
    h('label', { for: 'filter-min' }, 'Lowest price ($)'),
    h('input', { id: 'filter-min', name: 'min', inputmode: 'decimal', value: params.get('min_price') ? centsText(Number(params.get('min_price'))) : '' }),
    h('label', { for: 'filter-max' }, 'Highest price ($)'),
    h('input', { id: 'filter-max', name: 'max', inputmode: 'decimal', value: params.get('max_price') ? centsText(Number(params.get('max_price'))) : '' }),
    h('label', { for: 'filter-sort' }, 'Sort by'),
    h('select', { id: 'filter-sort', name: 'sort' },
      [['newest', 'Newest'], ['price_asc', 'Price, low to high'], ['price_desc', 'Price, high to low']]
        .map(([v, t]) => h('option', { value: v, selected: (params.get('sort') || 'newest') === v }, t))),
    h('p', { class: 'error', id: 'filter-error', role: 'alert' }),
    h('button', { type: 'submit', id: 'apply-filters' }, 'Apply'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const next = new URLSearchParams();
    if (params.get('q')) next.set('q', params.get('q'));
    if (data.get('category')) next.set('category', data.get('category'));
    for (const [input, key] of [['min', 'min_price'], ['max', 'max_price']]) {
      const text = data.get(input).trim();
      if (!text) continue;
      const cents = parseCents(text);
      if (cents === null) {
        form.querySelector('#filter-error').textContent = 'Prices are amounts like 12 or 12.50.';
        return;
      }
      next.set(key, String(cents));
    }
    if (data.get('sort') !== 'newest') next.set('sort', data.get('sort'));
    location.hash = `#/?${next}`;
  });

  const results = page.items.length
    ? h('ul', { class: 'grid', id: 'results' }, page.items.map((p) => h('li', { class: 'product-card' },
      image(p),
      h('h3', {}, h('a', { href: `#/product/${p.id}`, class: 'product-link' }, p.name)),
      h('span', { class: 'price' }, money(p.price_cents, p.currency)),
      availability(p))))
    : h('p', { id: 'results' }, 'No products match.');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  if (params.get('cursor')) {
    const first = new URLSearchParams(params);
    first.delete('cursor');
    pager.append(h('a', { href: `#/?${first}` }, 'First page'));
  }
  if (page.next_cursor) {
    const next = new URLSearchParams(params);
    next.set('cursor', page.next_cursor);
    pager.append(h('a', { href: `#/?${next}`, id: 'next-page', rel: 'next' }, 'Next page'));
  }
  view.append(h('div', { class: 'layout' },
    h('aside', {},
      h('nav', { class: 'panel', 'aria-label': 'Categories' }, h('h2', {}, 'Categories'),
        h('a', { href: '#/', 'aria-current': current ? null : 'true' }, 'Everything'),
        treeList(by, null, current, new URLSearchParams(params))),
      form),
    h('section', {}, h('h1', {}, heading), results, pager)));
}

export async function product(view, params, id) {
  const [p, cats] = await Promise.all([api('GET', `/products/${id}`), categories()]);
  const names = p.category_ids.map((c) => cats.find((x) => x.id === c)).filter(Boolean);
  const status = h('p', { id: 'add-status', role: 'status', 'aria-live': 'polite' });
  const qty = h('input', { id: 'qty', name: 'quantity', type: 'number', min: 1, max: 100, value: 1, inputmode: 'numeric' });
  const button = h('button', { type: 'submit', id: 'add-to-cart' }, 'Add to cart');
  // A product with options is bought as one of its variants: one select per option.
  const options = p.options || [];
  const selects = options.map((o, i) => h('select', { id: `option-${i}`, name: o.name },
    o.values.map((v) => h('option', { value: v }, v))));
  const chosen = () => (p.variants || []).find((v) =>
    options.every((o, i) => v.option_values[o.name] === selects[i].value));
  const price = h('p', { class: 'price', id: 'product-price' }, money(p.price_cents, p.currency));
  const stock = h('p', { id: 'product-stock' }, availability(p));
  const sku = h('small', { id: 'product-sku' }, `SKU ${p.sku}`);
  const showChoice = () => {
    const v = chosen();
    const sellable = v && v.active;
    price.textContent = sellable ? money(v.price_cents, p.currency) : money(p.price_cents, p.currency);
    stock.replaceChildren(sellable ? availability({ active: p.active, stock: v.stock })
      : h('span', { class: 'stock-low' }, 'Not available in this combination'));
    sku.textContent = `SKU ${sellable ? v.sku : p.sku}`;
    button.disabled = !(sellable && v.stock > 0);
  };
  selects.forEach((s) => s.addEventListener('change', showChoice));
  const form = h('form', { class: 'row', id: 'add-form' },
    options.map((o, i) => [h('label', { for: `option-${i}` }, o.name), selects[i]]),
    h('label', { for: 'qty' }, 'Quantity'), qty, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!user()) { location.hash = `#/signin?next=${encodeURIComponent(location.hash)}`; return; }
    button.disabled = true;
    status.className = '';
    try {
      const variant = options.length ? chosen() : null;
      const body = { product_id: p.id, quantity: Number(qty.value) };
      if (variant) body.variant_id = variant.id;
      const cart = await api('POST', '/cart/items', { body });
      const line = cart.items.find((l) => l.variant_id === (variant ? variant.id : p.id));
      status.replaceChildren(`Added. Your cart has ${line ? line.quantity : qty.value} of this. `, h('a', { href: '#/cart', id: 'go-to-cart' }, 'Go to cart'));
      status.className = 'ok';
    } catch (err) {
      status.textContent = describe(err);
      status.className = 'error';
    } finally {
      button.disabled = false;
      if (options.length) showChoice();
    }
  });
  if (options.length) showChoice();
  const buyable = p.active && p.stock > 0;
  view.append(h('article', { class: 'two' },
    h('div', {}, image(p, 'product-image')),
    h('div', {},
      h('h1', {}, p.name),
      price,
      stock,
      names.length ? h('p', {}, 'In ', names.map((c, i) => [i ? ', ' : '', h('a', { href: `#/?category=${c.id}` }, c.name)])) : null,
      h('p', { class: 'description' }, p.description),
      h('p', {}, sku),
      buyable ? form : null,
      status)));
}
