// The shop's ops console: plain DOM over the gateway's public and admin APIs (same origin).
// Everything shown is built with textContent, never innerHTML, so no API value can inject markup.
"use strict";

const SERVICES = ["wallet", "catalog", "order", "coupon", "payment", "analytics"];
const TOKEN_KEY = "shop-console-token";
const config = window.SHOP_CONSOLE || { traceUrl: "http://127.0.0.1:16686/trace/{trace_id}" };
const $ = (selector) => document.querySelector(selector);
let timer = null; // the current page's auto-refresh
const charts = {};

// ---- DOM and formatting -------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "on") Object.entries(value).forEach(([ev, fn]) => el.addEventListener(ev, fn));
    else if (value !== false && value != null) el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child != null) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function fill(selector, ...children) {
  const el = $(selector);
  el.replaceChildren(...children.flat().filter((c) => c != null));
  return el;
}

function table(caption, headers, rows) {
  if (!rows.length) return h("p", { class: "empty" }, `${caption}: none.`);
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}

const won = (n) => `${Number(n).toLocaleString("en-US")} KRW`;
const time = (iso) => (iso ? new Date(iso).toLocaleString("sv-SE", { hour12: false }) : "");
function since(a, b) {
  const ms = new Date(b) - new Date(a);
  return ms < 1000 ? `+${ms} ms` : `+${(ms / 1000).toFixed(1)} s`;
}

function say(text, kind = "info") {
  const el = $("#status");
  el.textContent = text;
  el.className = kind;
}

// ---- API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    const code = problem.code || `HTTP_${status}`;
    super(`${code}${problem.detail ? `: ${problem.detail}` : ""}`);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    if (answer.status === 401 && path !== "/api/auth/login") logout("Session expired: log in again.");
    throw new ApiError(answer.status, data, answer.headers.get("Retry-After"));
  }
  return data;
}

function failed(error) {
  if (error instanceof ApiError && error.status === 503) {
    return `Service unavailable (${error.code}); retry in ${error.retryAfter || "a few"} s.`;
  }
  if (error instanceof ApiError) return `${error.status} ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

// Runs an action, showing its failure in the status line instead of losing it.
async function attempt(action) {
  try {
    await action();
  } catch (error) {
    say(failed(error), "error");
  }
}

// ---- login --------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  await attempt(async () => {
    const { access_token } = await api("/api/auth/login", {
      method: "POST",
      body: { email: form.get("email"), password: form.get("password") },
    });
    sessionStorage.setItem(TOKEN_KEY, access_token);
    try {
      await api("/api/ops/order/outbox"); // the server says whether this account is an admin
    } catch (error) {
      sessionStorage.removeItem(TOKEN_KEY);
      throw error.status === 403 ? new Error("This account is not an admin.") : error;
    }
    event.target.reset();
    say("Logged in.");
    location.hash = location.hash && location.hash !== "#/login" ? location.hash : "#/orders";
    route();
  });
}

function logout(message = "Logged out.") {
  sessionStorage.removeItem(TOKEN_KEY);
  say(message);
  route();
}

// ---- orders and their saga ----------------------------------------------------------------

// What a history event is in the saga, from its name (the order service's event names).
function kindOf(event) {
  if (/Parked/.test(event)) return "parked";
  if (/RetryRequested/.test(event)) return "operator";
  if (/Resent|TimedOut/.test(event)) return "deadline";
  if (/Failed|Declined|Rejected/.test(event)) return "failure";
  if (/Released|Refunded|PaymentsCancelled|PaymentCancelled|Compensat/.test(event))
    return "compensation";
  if (/Requested|Placed/.test(event)) return "request";
  if (/^Order(Paid|Cancelled|Modified)$/.test(event)) return "outcome";
  return "step";
}

// The command (and who handles it) that a reply in the history answers (libs/contracts).
const COMMAND_OF = {
  StockReserved: "ReserveStock → catalog",
  StockReservationFailed: "ReserveStock → catalog",
  CouponReserved: "ReserveCoupon → coupon",
  CouponReservationFailed: "ReserveCoupon → coupon",
  WalletDebited: "DebitWallet → wallet",
  WalletDebitFailed: "DebitWallet → wallet",
  PaymentApproved: "payment → provider (HTTP)",
  PaymentDeclined: "payment → provider (HTTP)",
  PaymentTimedOut: "payment → provider (HTTP)",
  PaymentCancelled: "cancel → provider (HTTP)",
  StockCommitSent: "CommitStock → catalog",
  StockReleased: "ReleaseStock → catalog",
  StockReturned: "ReturnStock → catalog",
  CouponReleased: "ReleaseCoupon → coupon",
  WalletRefunded: "RefundWallet → wallet",
};

function traceLink(traceId) {
  const href = config.traceUrl.replace("{trace_id}", encodeURIComponent(traceId));
  return h("a", { href, target: "_blank", rel: "noopener", class: "trace" }, `Trace ${traceId}`);
}

function timeline(history) {
  return h(
    "ol",
    { class: "timeline", "aria-label": "Saga timeline, oldest first" },
    history.map((entry, i) => {
      const kind = kindOf(entry.event);
      return h(
        "li",
        { class: `kind-${kind}` },
        h("time", { datetime: entry.at }, time(entry.at)),
        h("span", { class: "delta" }, i ? since(history[i - 1].at, entry.at) : "start"),
        h("span", { class: `badge ${kind}` }, kind),
        h("strong", {}, entry.event),
        COMMAND_OF[entry.event] ? h("span", { class: "command" }, COMMAND_OF[entry.event]) : null,
        h("span", { class: "order-status" }, entry.status),
        entry.detail ? h("span", { class: "detail" }, entry.detail) : null,
        entry.trace_id && entry.trace_id !== history[0].trace_id ? traceLink(entry.trace_id) : null,
      );
    }),
  );
}

async function optional(path) {
  try {
    return await api(path);
  } catch (error) {
    return { error: failed(error) };
  }
}

async function showOrder(orderId) {
  fill("#order", h("p", {}, "Loading…"));
  const [order, history] = await Promise.all([
    api(`/api/orders/${encodeURIComponent(orderId)}`),
    api(`/api/orders/${encodeURIComponent(orderId)}/history`),
  ]);
  const [payments, coupon] = await Promise.all([
    optional(`/api/payments?order_id=${encodeURIComponent(orderId)}`),
    order.coupon_id ? optional(`/api/user-coupons/${encodeURIComponent(order.coupon_id)}`) : null,
  ]);
  const traceId = order.trace_id || history.find((e) => e.trace_id)?.trace_id;
  fill(
    "#order",
    h("h3", {}, `Order ${order.id}`),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Status"), h("dd", { id: "order-status" }, order.status),
      h("dt", {}, "User"), h("dd", {}, order.user_id),
      h("dt", {}, "Total"), h("dd", {}, `${won(order.total)} (subtotal ${won(order.subtotal)}, discount ${won(order.discount)})`),
      order.failure_code ? [h("dt", {}, "Failure"), h("dd", {}, order.failure_code)] : null,
      h("dt", {}, "Created"), h("dd", {}, time(order.created_at)),
      h("dt", {}, "Trace"), h("dd", {}, traceId ? traceLink(traceId) : "no trace id recorded"),
    ),
    table(
      "Lines",
      ["product", "quantity", "unit price"],
      order.items.map((i) => [i.product_id, i.quantity, won(i.unit_price)]),
    ),
    h("h4", {}, "Saga timeline"),
    timeline(history),
    h("h4", {}, "Payment"),
    payments.error
      ? h("p", { class: "error" }, payments.error)
      : table(
          "Payments at the provider",
          ["payment", "amount", "status", "created"],
          payments.items.map((p) => [p.payment_id, won(p.amount), p.status, time(p.created_at)]),
        ),
    h("h4", {}, "Coupon"),
    !coupon
      ? h("p", { class: "empty" }, "No coupon.")
      : coupon.error
        ? h("p", { class: "error" }, coupon.error)
        : h("p", {}, `${coupon.name}: ${coupon.status} (${coupon.discount_type} ${coupon.discount_value}), user coupon ${coupon.id}`),
  );
}

async function listUserOrders(userId) {
  const page = await api(`/api/users/${encodeURIComponent(userId)}/orders?limit=50`);
  fill(
    "#user-orders",
    table(
      `Orders of ${userId}, newest first`,
      ["order", "status", "total", "created"],
      page.items.map((o) => [
        h("a", { href: `#/orders/${o.id}` }, o.id),
        o.status,
        won(o.total),
        time(o.created_at),
      ]),
    ),
  );
}

// ---- parked sagas -------------------------------------------------------------------------

async function showSagas() {
  const page = await api("/api/ops/order/parked-orders?limit=100");
  fill(
    "#sagas",
    table(
      "Parked orders, longest parked first",
      ["order", "status", "step", "operation", "attempts", "parked at", "last error", ""],
      page.items.map((o) => [
        h("a", { href: `#/orders/${o.id}` }, o.id),
        o.status,
        o.step,
        o.operation || "",
        o.attempts,
        time(o.parked_at),
        h("code", {}, o.last_error || ""),
        h("button", { type: "button", on: { click: () => retrySaga(o.id) } }, "Retry"),
      ]),
    ),
  );
}

async function retrySaga(orderId) {
  await attempt(async () => {
    await api(`/api/ops/order/parked-orders/${encodeURIComponent(orderId)}/retry`, { method: "POST" });
    say(`Order ${orderId}: saga resumed.`);
    await showSagas();
  });
}

// ---- dead letters -------------------------------------------------------------------------

function dlqSelection() {
  const form = new FormData($("#dlq-form"));
  return { service: form.get("service"), status: form.get("status") };
}

async function showDeadLetters() {
  const { service, status } = dlqSelection();
  const page = await api(`/api/ops/${service}/dead-letters?limit=100&status=${status}`);
  fill(
    "#dead-letters",
    table(
      `${status} letters of ${service}, oldest first`,
      ["dead at", "topic", "partition/offset", "type", "key", "attempts", "error", ""],
      page.items.map((d) => [
        time(d.dead_at),
        d.topic,
        `${d.partition ?? "-"}/${d.offset ?? "-"}`,
        d.type || "",
        d.key || "",
        d.attempts,
        h("code", { class: "error-text" }, d.error.split("\n")[0]),
        h(
          "span",
          { class: "actions" },
          h("button", { type: "button", on: { click: () => attempt(() => showDeadLetter(service, d.id)) } }, "Show"),
          status === "DEAD"
            ? h("button", { type: "button", class: "redrive", on: { click: () => redrive(service, d.id) } }, "Redrive")
            : null,
        ),
      ]),
    ),
  );
}

async function showDeadLetter(service, id) {
  const letter = await api(`/api/ops/${service}/dead-letters/${encodeURIComponent(id)}`);
  const { payload, error, ...facts } = letter;
  fill(
    "#dead-letter",
    h("h3", {}, `Dead letter ${id}`),
    h("dl", { class: "facts" }, Object.entries(facts).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "")])),
    h("h4", {}, "Error"),
    h("pre", {}, error),
    h("h4", {}, "Message"),
    h("pre", {}, JSON.stringify(payload, null, 2)),
  );
  $("#dead-letter h3").scrollIntoView({ block: "nearest" });
}

async function redrive(service, id) {
  await attempt(async () => {
    const letter = await api(`/api/ops/${service}/dead-letters/${encodeURIComponent(id)}/redrive`, {
      method: "POST",
    });
    say(`Dead letter ${id}: ${letter.status}. It leaves the list once its consumer handles it.`);
    await showDeadLetters();
  });
}

// ---- outbox backlog -----------------------------------------------------------------------

async function showOutbox() {
  const rows = await Promise.all(
    SERVICES.map(async (service) => {
      const backlog = await optional(`/api/ops/${service}/outbox`);
      if (backlog.error) return [service, h("span", { class: "error" }, backlog.error), ""];
      const age = backlog.oldest_age_s == null ? "-" : `${backlog.oldest_age_s.toFixed(1)} s`;
      return [service, String(backlog.pending), age];
    }),
  );
  fill("#outbox", table("Outbox backlog per service", ["service", "pending", "oldest age"], rows));
}

// ---- sales charts -------------------------------------------------------------------------

function draw(id, config) {
  charts[id]?.destroy();
  charts[id] = new window.Chart($(`#${id}`), {
    ...config,
    options: { animation: false, responsive: true, maintainAspectRatio: false, ...config.options },
  });
}

async function showPopular() {
  const form = new FormData($("#popular-form"));
  const query = new URLSearchParams({ days: form.get("days"), limit: form.get("limit"), metric: form.get("metric") });
  const rows = await api(`/api/products/popular?${query}`);
  const metric = form.get("metric");
  draw("popular-chart", {
    type: "bar",
    data: {
      labels: rows.map((r) => r.name),
      datasets: [
        { label: metric, data: rows.map((r) => r[metric]), backgroundColor: "#2f6fb3", maxBarThickness: 28 },
      ],
    },
    options: { indexAxis: "y", plugins: { legend: { display: false } } },
  });
  fill(
    "#popular-table",
    h("details", {}, h("summary", {}, "Popular products as a table"),
      table("Popular products", ["rank", "product", "category", "quantity", "amount"],
        rows.map((r) => [r.rank, r.name, r.category, r.quantity, won(r.amount)]))),
  );
}

const isoDate = (d) => d.toISOString().slice(0, 10);

function salesRange(period) {
  // Through tomorrow (UTC): the shop's calendar (Asia/Seoul by default) may be a day ahead.
  const to = new Date(Date.now() + 86400000);
  const from = new Date();
  if (period === "day") from.setUTCDate(from.getUTCDate() - 13);
  else if (period === "week") from.setUTCDate(from.getUTCDate() - 7 * 11);
  else from.setUTCMonth(from.getUTCMonth() - 11, 1);
  return { from: isoDate(from), to: isoDate(to) };
}

async function showSales() {
  const period = new FormData($("#sales-form")).get("period");
  const query = new URLSearchParams({ period, ...salesRange(period) });
  const rows = await api(`/api/stats/sales?${query}`);
  draw("sales-chart", {
    data: {
      labels: rows.map((r) => r.period_start),
      datasets: [
        { type: "bar", label: "amount (KRW)", data: rows.map((r) => r.amount), backgroundColor: "#2f6fb3", yAxisID: "y", maxBarThickness: 40 },
        { type: "line", label: "orders", data: rows.map((r) => r.orders), borderColor: "#c0392b", yAxisID: "y1" },
      ],
    },
    options: {
      scales: {
        y: { beginAtZero: true, position: "left" },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } },
      },
    },
  });
  fill(
    "#sales-table",
    h("details", {}, h("summary", {}, "Sales as a table"),
      table(`Sales by ${period}`, ["period start", "quantity", "amount", "orders"],
        rows.map((r) => [r.period_start, r.quantity, won(r.amount), r.orders]))),
  );
}

// ---- coupons ------------------------------------------------------------------------------

async function showCoupon(couponId) {
  const c = await api(`/api/coupons/${encodeURIComponent(couponId)}`);
  const left = c.total_quantity - c.issued_quantity;
  fill(
    "#coupon",
    h("h3", {}, c.name),
    h("label", { for: "coupon-progress" }, `Issued ${c.issued_quantity} of ${c.total_quantity} (${left} left)`),
    h("progress", { id: "coupon-progress", max: c.total_quantity, value: c.issued_quantity }),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Discount"), h("dd", {}, `${c.discount_type} ${c.discount_value}`),
      h("dt", {}, "Minimum order"), h("dd", {}, won(c.min_order_amount)),
      h("dt", {}, "Valid"), h("dd", {}, `${c.valid_days} days after issue`),
      h("dt", {}, "Created"), h("dd", {}, time(c.created_at)),
    ),
    h("p", { class: "hint" }, "Refreshed every 2 s while this page is open."),
  );
}

// ---- routing ------------------------------------------------------------------------------

// Each page: what to load when it opens (args from the hash), and how often to reload.
const pages = {
  orders: { load: (id) => (id ? showOrder(id) : null) },
  sagas: { load: showSagas },
  "dead-letters": { load: showDeadLetters },
  outbox: { load: showOutbox, every: 5000 },
  sales: { load: () => Promise.all([showPopular(), showSales()]) },
  coupons: { load: (id) => (id ? showCoupon(id) : null), every: 2000 },
};

function route() {
  clearInterval(timer);
  const loggedIn = Boolean(sessionStorage.getItem(TOKEN_KEY));
  const [name, arg] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = loggedIn ? (pages[name] ? name : "orders") : "login";
  $("#nav").hidden = !loggedIn;
  document.querySelectorAll(".page").forEach((el) => (el.hidden = el.id !== `page-${page}`));
  document.querySelectorAll("#nav a").forEach((a) => {
    if (a.getAttribute("href") === `#/${page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  if (page === "login") return;
  if (page === "orders" && arg) $("#order-form [name=order_id]").value = arg;
  if (page === "coupons" && arg) $("#coupon-form [name=coupon_id]").value = arg;
  const { load, every } = pages[page];
  attempt(() => load(arg));
  if (every && (arg || page === "outbox")) timer = setInterval(() => attempt(() => load(arg)), every);
}

// Opens a page; the same hash again reloads it (no hashchange event fires for it).
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function onSubmit(selector, action) {
  $(selector).addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => action(new FormData(event.target)));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", () => logout());
  onSubmit("#order-form", (f) => go(`#/orders/${f.get("order_id").trim()}`));
  onSubmit("#user-orders-form", (f) => listUserOrders(f.get("user_id").trim()));
  onSubmit("#coupon-form", (f) => go(`#/coupons/${f.get("coupon_id").trim()}`));
  onSubmit("#dlq-form", () => showDeadLetters());
  onSubmit("#popular-form", () => showPopular());
  onSubmit("#sales-form", () => showSales());
  $("#sagas-refresh").addEventListener("click", () => attempt(showSagas));
  window.addEventListener("hashchange", () => {
    say(""); // a message belongs to the page it was said on
    route();
  });
  route();
});
