// Binds a card with Stripe Elements: a SetupIntent from our API, confirmed by Stripe.js in the browser
// (the card number never reaches our servers), then the console makes it the default card.
(function () {
  const form = document.getElementById("card-setup-form");
  if (!form || typeof Stripe === "undefined") return;
  const stripe = Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  const errorBox = document.getElementById("card-errors");
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errorBox.textContent = "";
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
      const setup = await fetch(form.dataset.setupUrl, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}, body: "{}"});
      const body = await setup.json();
      if (!setup.ok) throw new Error(body.detail || "Card setup is not available.");
      const result = await stripe.confirmCardSetup(body.client_secret, {payment_method: {card: card}});
      if (result.error) throw new Error(result.error.message);
      form.querySelector("input[name=setup_intent]").value = result.setupIntent.id;
      form.submit();
    } catch (error) {
      errorBox.textContent = error.message;
      button.disabled = false;
    }
  });
})();
