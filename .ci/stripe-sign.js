// Prints a Stripe-Signature header for $STRIPE_PAYLOAD signed with
// $STRIPE_SECRET, made by Stripe's own Node library (npm `stripe`), so the
// Rust tests check that crm verifies what Stripe produces. .ci/run copies
// this file next to the installed package and points CRM_TEST_STRIPE_NODE at it.
const Stripe = require('stripe');
const stripe = new Stripe('sk_test_unused');
const header = stripe.webhooks.generateTestHeaderString({
  payload: process.env.STRIPE_PAYLOAD,
  secret: process.env.STRIPE_SECRET,
});
process.stdout.write(header);
