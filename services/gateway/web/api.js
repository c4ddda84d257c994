// The public API (/api/v1) with the shopper's session.
//
// Session storage: localStorage, so a session survives reloads and new tabs (a shopper opening a
// product in a second tab stays signed in). What limits the damage of a stolen token: the page's
// CSP allows no inline or foreign script, access tokens live 15 minutes, and refresh tokens
// rotate on every use with reuse detection (a replayed one revokes the whole family). Refreshes
// are serialised across tabs with a Web Lock, so two tabs never spend the same refresh token.

const KEY = 'souk.session';
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || '';
  }
}

function load() {
  try { return JSON.parse(localStorage.getItem(KEY) || 'null'); } catch { return null; }
}

function save(session) {
  if (session) localStorage.setItem(KEY, JSON.stringify(session));
  else localStorage.removeItem(KEY);
  listeners.forEach((fn) => fn(session));
}

window.addEventListener('storage', (e) => {
  if (e.key === KEY) listeners.forEach((fn) => fn(load()));
});

export function onSession(fn) { listeners.add(fn); }
export function session() { return load(); }
export function user() { return load()?.user || null; }

function fromTokens(tokens, user) {
  return {
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    // Refresh a little early so a request never leaves with a token about to expire.
    expires_at: Date.now() + (tokens.expires_in - 30) * 1000,
    user,
  };
}

async function raw(method, path, { body, headers = {}, token } = {}) {
  const init = { method, headers: { accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (token) init.headers.authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError(0, { code: 'network', detail: 'The shop could not be reached. Check your connection and try again.' });
  }
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!res.ok) {
    const problem = data || {};
    if (res.status === 429) problem.retry_after = res.headers.get('retry-after');
    throw new ApiError(res.status, problem);
  }
  return data;
}

async function withLock(fn) {
  if (navigator.locks) return navigator.locks.request('souk-session', fn);
  return fn();
}

// Trades the refresh token for a new pair. `stale` is the access token that failed (or
// expired): if another tab already replaced it, that tab's fresh pair is used as is.
async function refresh(stale) {
  return withLock(async () => {
    const current = load();
    if (!current) return null;
    if (current.access_token !== stale && current.expires_at > Date.now()) return current;
    try {
      const tokens = await raw('POST', '/auth/refresh', { body: { refresh_token: current.refresh_token } });
      const next = fromTokens(tokens, current.user);
      save(next);
      return next;
    } catch (e) {
      if (e.status === 401 || e.status === 422 || e.status === 400) save(null);
      throw e;
    }
  });
}

async function token() {
  let s = load();
  if (s && s.expires_at <= Date.now()) s = await refresh(s.access_token);
  return s?.access_token;
}

// One API call; signed in when a session exists. A 401 refreshes once and retries.
export async function api(method, path, options = {}) {
  const first = await token();
  try {
    return await raw(method, path, { ...options, token: first });
  } catch (e) {
    if (e.status !== 401 || !first) throw e;
    const next = await refresh(first);
    if (!next) throw e;
    return raw(method, path, { ...options, token: next.access_token });
  }
}

async function start(tokens, profile) {
  save(fromTokens(tokens, profile));
  const me = await api('GET', '/users/me');
  save({ ...load(), user: me });
  return me;
}

export async function register(name, email, password) {
  const out = await raw('POST', '/auth/register', { body: { name, email, password } });
  return start(out, out.user);
}

export async function signIn(email, password) {
  return start(await raw('POST', '/auth/login', { body: { email, password } }), null);
}

// Revokes the refresh token at the server, then forgets the session here whatever happens.
export async function signOut() {
  const s = load();
  try {
    if (s) await api('POST', '/auth/logout', { body: { refresh_token: s.refresh_token } });
  } finally {
    save(null);
  }
}

export async function reloadProfile() {
  const me = await api('GET', '/users/me');
  const s = load();
  if (s) save({ ...s, user: me });
  return me;
}

const WORDS = {
  insufficient_stock: 'There is not enough stock for that quantity.',
  product_unavailable: 'A product in your cart is no longer for sale.',
  cart_empty: 'Your cart is empty.',
  checkout_in_progress: 'This cart is already being paid for. Wait a moment, then look at your orders.',
  payment_failed: 'Your card was declined.',
  email_taken: 'An account with this e-mail address already exists. Sign in instead.',
  invalid_credentials: 'The e-mail address or password is wrong.',
  idempotency_key_reused: 'This payment attempt was already made with other details. Try again.',
  not_found: 'Not found.',
  promotion_not_found: 'No promotion has this code. Check the spelling and try again.',
  code_taken: 'This code is already in use (codes are compared ignoring case). Choose another.',
};

// Why a known promotion code does not apply (the `reason` of a 422 promotion_not_applicable,
// a 409 promotion_unavailable, or a cart's stored code that stopped applying).
const REASONS = {
  expired: 'this code has expired',
  not_started: 'this code is not valid yet',
  exhausted: 'this code has been used up',
  min_subtotal: 'your cart does not reach the minimum amount for this code',
  no_eligible_items: 'none of the items in your cart are part of this promotion',
  customer_limit: 'you have already used this code as often as it allows',
  not_found: 'this code is no longer offered',
};

export function promotionReason(reason) {
  return REASONS[reason] || 'this code cannot be used for this cart';
}

function capitalised(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// An error in words for the shopper.
export function describe(e) {
  if (!(e instanceof ApiError)) return `Something went wrong: ${e?.message || e}`;
  if (e.status === 0) return e.problem.detail;
  if (e.status === 402) {
    // The API's detail says why when it knows more than "declined" (e.g. insufficient funds).
    const detail = (e.problem.detail || '').trim();
    const reason = detail && !/^(the |your )?card was declined\.?$/i.test(detail) ? ` (${detail})` : '';
    return `Your card was declined${reason}. No money was taken; try another card.`;
  }
  if (WORDS[e.code]) return WORDS[e.code];
  if (e.code === 'promotion_not_applicable') return `${capitalised(promotionReason(e.problem.reason))}.`;
  if (e.code === 'promotion_unavailable') {
    return `Your promotion code can no longer be used: ${promotionReason(e.problem.reason)}. Nothing was charged; remove the code from your cart or try another.`;
  }
  if (e.status === 401) return 'Please sign in again.';
  if (e.status === 403) return 'You are not allowed to do that.';
  if (e.status === 429) return `Too many attempts. Try again in ${e.problem.retry_after || 'a few'} seconds.`;
  if (e.status === 422 && e.problem.errors?.length) {
    return e.problem.errors.map((x) => `${x.field}: ${x.message}`).join('; ');
  }
  if (e.status >= 502) return 'Part of the shop is not answering right now (the catalog, cart or payments). Please try again in a moment.';
  return e.problem.detail || `The shop answered ${e.status}.`;
}
