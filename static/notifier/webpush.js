/* Browser notifications on Notifier's inbox page (templates/notifier/webpush/_toggle.html).
   "Enable" asks for permission, registers the service worker (served at the site's root),
   subscribes with the channel's VAPID public key and posts the subscription to the site;
   "Disable" tells the site to forget it and unsubscribes. */
(function () {
  "use strict";

  const root = document.getElementById("webpush");
  if (!root) return;
  const enable = root.querySelector('[data-webpush="enable"]');
  const disable = root.querySelector('[data-webpush="disable"]');
  const status = root.querySelector('[data-webpush="status"]');
  let syncing = Promise.resolve(); // the page load's re-post of the subscription

  function say(text) {
    status.textContent = text;
  }

  function show(subscribed) {
    enable.hidden = subscribed;
    disable.hidden = !subscribed;
  }

  function keyBytes(base64url) {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function sameKey(buffer, base64url) {
    if (!buffer) return true;
    const expected = keyBytes(base64url);
    const actual = new Uint8Array(buffer);
    return actual.length === expected.length && actual.every((b, i) => b === expected[i]);
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": root.dataset.csrf },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `the site answered HTTP ${response.status}`);
    return answer;
  }

  function save(subscription) {
    return post(root.dataset.subscribe, subscription.toJSON ? subscription.toJSON() : subscription);
  }

  async function registration() {
    await navigator.serviceWorker.register(root.dataset.worker);
    return navigator.serviceWorker.ready;
  }

  async function turnOn() {
    enable.disabled = true;
    say("");
    try {
      const permission = await Notification.requestPermission();
      if (permission !== "granted") {
        say("Notifications are blocked for this site: allow them in the browser's settings.");
        return;
      }
      const worker = await registration();
      let subscription = await worker.pushManager.getSubscription();
      if (subscription && !sameKey(subscription.options.applicationServerKey, root.dataset.publicKey)) {
        await subscription.unsubscribe(); // made with another key: the site cannot push to it
        subscription = null;
      }
      if (!subscription) {
        subscription = await worker.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: keyBytes(root.dataset.publicKey),
        });
      }
      await save(subscription);
      show(true);
      say("Browser notifications are on.");
    } catch (error) {
      say(`Could not enable browser notifications: ${error.message}`);
    } finally {
      enable.disabled = false;
    }
  }

  async function turnOff() {
    disable.disabled = true;
    say("");
    try {
      await syncing; // so the site cannot store it again after forgetting it
      const worker = await navigator.serviceWorker.getRegistration();
      const subscription = worker && (await worker.pushManager.getSubscription());
      if (subscription) {
        await post(root.dataset.unsubscribe, { endpoint: subscription.endpoint });
        await subscription.unsubscribe();
      }
      show(false);
      say("Browser notifications are off.");
    } catch (error) {
      say(`Could not disable browser notifications: ${error.message}`);
    } finally {
      disable.disabled = false;
    }
  }

  async function start() {
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      say("This browser cannot show push notifications.");
      return;
    }
    enable.addEventListener("click", turnOn);
    disable.addEventListener("click", turnOff);
    const worker = await navigator.serviceWorker.getRegistration();
    const subscription = worker && (await worker.pushManager.getSubscription());
    const on = Boolean(subscription) && Notification.permission === "granted";
    show(on);
    if (on) syncing = save(subscription).catch(() => {}); // keeps the site's copy current
  }

  start()
    .catch((error) => say(`Browser notifications are unavailable: ${error.message}`))
    .finally(() => root.setAttribute("data-ready", ""));
})();
