// Shared helpers for the OIDC client scripts. Each script prints exactly one
// JSON line on stdout (its result) or exits non-zero with a message on stderr.
import { createHash, randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { inspect } from 'node:util';

/** Required environment variable (throws if unset or empty). */
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Cookie jar for the one server under test: name → value (domain/path ignored). */
export const jar = new Map();

function storeCookies(response) {
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq < 1) continue;
    const name = pair.slice(0, eq).trim();
    const expired = attributes.some((attribute) => {
      const i = attribute.indexOf('=');
      const key = attribute.slice(0, i < 0 ? undefined : i).trim().toLowerCase();
      const value = i < 0 ? '' : attribute.slice(i + 1).trim();
      return (key === 'max-age' && Number(value) <= 0) || (key === 'expires' && Date.parse(value) <= Date.now());
    });
    if (expired) jar.delete(name);
    else jar.set(name, pair.slice(eq + 1).trim());
  }
}

/** fetch without following redirects, sending and storing cookies. */
export async function request(url, options = {}) {
  const headers = new Headers(options.headers);
  if (jar.size) headers.set('cookie', [...jar].map(([name, value]) => `${name}=${value}`).join('; '));
  const response = await fetch(url, { ...options, headers, redirect: 'manual' });
  storeCookies(response);
  return response;
}

/** Throws with the response status and the start of its body. */
export async function fail(response, what) {
  const body = await response.text().catch(() => '');
  throw new Error(`${what}: got HTTP ${response.status} from ${response.url}\n${body.slice(0, 2000)}`);
}

/** Expects a 303 whose Location starts with `prefix`; returns the absolute Location. */
export async function expectRedirect(response, prefix, what) {
  const location = response.headers.get('location');
  if (response.status !== 303 || !location) await fail(response, `${what}: expected a 303 to ${prefix}`);
  const absolute = new URL(location, response.url).href;
  assert(absolute.startsWith(prefix), `${what}: redirected to ${absolute}, expected it to start with ${prefix}`);
  return absolute;
}

const NAMED_ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

export function decodeEntities(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (match, entity) => {
    if (entity[0] !== '#') return NAMED_ENTITIES[entity.toLowerCase()] ?? match;
    const hex = entity[1].toLowerCase() === 'x';
    return String.fromCodePoint(parseInt(entity.slice(hex ? 2 : 1), hex ? 16 : 10));
  });
}

// A start tag, allowing '>' inside quoted attribute values.
const tagPattern = (name) => new RegExp(`<${name}\\b(?:"[^"]*"|'[^']*'|[^'">])*>`, 'gi');

function attributesOf(tag) {
  const attributes = {};
  const inner = tag.replace(/^<[a-z]+/i, '').replace(/\/?>$/, '');
  for (const m of inner.matchAll(/([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    attributes[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attributes;
}

/**
 * Submits the first <form> of `html` like a browser would: its hidden inputs
 * (and the name/value of its first named submit button, if any), overridden
 * or extended by `fields`. Returns the Response (redirects not followed).
 */
export async function submitForm(html, baseUrl, fields = {}) {
  const start = tagPattern('form').exec(html);
  assert(start, `no <form> found in page from ${baseUrl}:\n${html.slice(0, 2000)}`);
  const end = html.indexOf('</form>', start.index);
  const body = html.slice(start.index + start[0].length, end < 0 ? undefined : end);
  const form = attributesOf(start[0]);
  const action = new URL(form.action || baseUrl, baseUrl);
  const method = (form.method || 'get').toLowerCase();

  const params = new URLSearchParams();
  for (const [tag] of body.matchAll(tagPattern('input'))) {
    const input = attributesOf(tag);
    if ((input.type || '').toLowerCase() === 'hidden' && input.name) params.append(input.name, input.value ?? '');
  }
  const button = [...body.matchAll(tagPattern('button'))]
    .map(([tag]) => attributesOf(tag))
    .find((b) => b.name && (b.type || 'submit').toLowerCase() === 'submit');
  if (button) params.set(button.name, button.value ?? '');
  for (const [name, value] of Object.entries(fields)) params.set(name, value);

  if (method === 'get') {
    action.search = params.toString();
    return request(action);
  }
  return request(action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: params.toString(),
  });
}

const base64url = (bytes) => Buffer.from(bytes).toString('base64url');

/** PKCE S256 pair with a 32-byte random verifier. */
export function pkce() {
  const verifier = base64url(randomBytes(32));
  const challenge = base64url(createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

export const randomString = () => base64url(randomBytes(16));

/** Prints the result as one JSON line on stdout. */
export function output(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Runs `main`, prints its result, or reports the failure on stderr and exits 1. */
export function run(main) {
  main().then(output, (error) => {
    // inspect() shows `cause` and the error/error_description/status fields of
    // OAuth errors; Playwright's call logs carry colour codes, stripped here.
    const message = inspect(error, { depth: 5 }).replace(/\x1b\[[0-9;]*m/g, '');
    console.error(`${basename(process.argv[1])} failed: ${message}`);
    process.exit(1);
  });
}
