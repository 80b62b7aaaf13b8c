{% comment %}The service worker of Notifier's browser notifications, served at the site's root
(campaigns.views.webpush.service_worker) so its scope covers every page. A push message's
payload is JSON: {"title", "body", "url", "icon", "image", "badge", "tag", "lang", "data"}.{% endcomment %}"use strict";

const DEFAULT_URL = "{{ default_url|escapejs }}";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let message = {};
  if (event.data) {
    try {
      message = event.data.json();
    } catch (error) {
      message = { body: event.data.text() };
    }
  }
  const options = {
    body: message.body || "",
    data: { ...(message.data || {}), url: message.url || DEFAULT_URL },
  };
  for (const name of ["icon", "image", "badge", "tag", "lang"]) {
    if (message[name]) options[name] = message[name];
  }
  event.waitUntil(self.registration.showNotification(message.title || "Notification", options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL((event.notification.data || {}).url || DEFAULT_URL, self.location.origin).href;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        if (client.url === target && "focus" in client) return client.focus();
      }
      return self.clients.openWindow(target);
    })(),
  );
});
