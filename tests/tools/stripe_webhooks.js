// Posts webhooks signed by the official `stripe` package (webhooks.generateTestHeaderString)
// to a running endpoint, the valid ones and every refusal case; prints one JSON line per
// case: {"case", "status", "text"}.
// Usage: node stripe_webhooks.js URL SECRET
const Stripe = require("stripe");

const [url, secret] = process.argv.slice(2);
const stripe = new Stripe("sk_test_not_used", { apiVersion: "2024-06-20" });
const sign = (payload, opts = {}) =>
    stripe.webhooks.generateTestHeaderString({ payload, secret, ...opts });

const event = (id, type) =>
    JSON.stringify({
        id,
        object: "event",
        type,
        created: Math.floor(Date.now() / 1000),
        data: { object: { id: "cs_test_1", object: "checkout.session", amount_total: 4200 } },
    });

const first = event("evt_test_1", "checkout.session.completed");
const second = event("evt_test_2", "payment_intent.succeeded");
const now = Math.floor(Date.now() / 1000);
const big = JSON.stringify({ id: "evt_big", type: "x.y", blob: "x".repeat(1024 * 1024 + 1) });

const cases = [
    ["valid", first, { "Stripe-Signature": sign(first) }],
    ["retry of the same event", first, { "Stripe-Signature": sign(first) }],
    ["another event", second, { "Stripe-Signature": sign(second) }],
    ["tampered body", first.replace("4200", "1"), { "Stripe-Signature": sign(first) }],
    ["wrong secret", first, {
        "Stripe-Signature": stripe.webhooks.generateTestHeaderString({ payload: first, secret: "whsec_other" }),
    }],
    ["replay (timestamp 10 minutes old)", first, { "Stripe-Signature": sign(first, { timestamp: now - 600 }) }],
    ["missing header", first, {}],
    ["malformed header", first, { "Stripe-Signature": "v1=nothing-here" }],
    ["not JSON", "not json", { "Stripe-Signature": sign("not json") }],
    ["too large", big, { "Stripe-Signature": sign(big) }],
];

(async () => {
    for (const [name, body, headers] of cases) {
        const response = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json", ...headers },
            body,
        });
        console.log(JSON.stringify({ case: name, status: response.status, text: await response.text() }));
    }
})().catch((e) => {
    console.error(e);
    process.exit(1);
});
