// The chat page: pusher-js (the pinned npm build the app serves) connected
// with the options `pusher-relay config --client` printed, and the app's
// JSON actions behind each form. Every event received is also kept in
// window.chat, so that a person in the console (or a browser test) can see
// exactly what arrived and when.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const context = JSON.parse($('chat-context').textContent);
  const realtime = JSON.parse($('realtime-config').textContent);
  const me = context.user;

  /** What arrived, in order: {channel, event, data, at} with `at` in ms since the epoch. */
  const chat = (window.chat = { received: [], subscriptionErrors: [], states: [], room: null, subscribed: new Set() });

  const now = () => performance.timeOrigin + performance.now();

  function banner(kind, text) {
    const el = $('connection');
    el.className = `banner ${kind}`;
    el.textContent = text;
  }

  function showError(text) {
    const el = $('action-error');
    el.textContent = text;
    el.hidden = !text;
  }

  /** Appends a line to a list; text only, never HTML from an event. */
  function addItem(listId, parts, attrs = {}) {
    const li = document.createElement('li');
    for (const [name, value] of Object.entries(attrs)) li.dataset[name] = value;
    for (const part of parts) {
      if (typeof part === 'string' || part instanceof Node) {
        li.append(part);
      } else {
        const el = document.createElement(part.tag);
        el.textContent = part.text;
        if (part.className) el.className = part.className;
        li.append(el);
      }
    }
    const list = $(listId);
    list.append(li);
    scrollToEnd(list);
    return li;
  }

  // One scroll per frame and list, not one per message: a burst of
  // hundreds of messages would otherwise force a layout for each.
  const toScroll = new Set();
  function scrollToEnd(list) {
    if (toScroll.size === 0) {
      requestAnimationFrame(() => {
        for (const el of toScroll) el.lastElementChild?.scrollIntoView({ block: 'nearest' });
        toScroll.clear();
      });
    }
    toScroll.add(list);
  }

  /** POSTs form fields to one of the app's actions; the JSON reason is shown when it refuses. */
  async function post(url, fields = {}) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      showError(`${url}: ${body.error || response.statusText} (${response.status})`);
      throw new Error(body.error || `HTTP ${response.status}`);
    }
    showError('');
    return body;
  }

  if (realtime.error) {
    banner('failed', realtime.error);
    return;
  }

  const { key, ...options } = realtime.client;
  const scheme = options.forceTLS ? 'wss' : 'ws';
  const host = options.wsHost || `ws-${options.cluster}.pusher.com`;
  const port = options.forceTLS ? options.wssPort || 443 : options.wsPort || 80;
  const server = `${scheme}://${host}:${port}`;
  const pusher = (window.pusher = new Pusher(key, options));

  // The banner follows pusher-js's connection state, so a page that cannot
  // reach the server says so instead of sitting silently empty.
  pusher.connection.bind('state_change', ({ current }) => {
    chat.states.push(current);
    if (current === 'connected') {
      banner('ok', `Connected to ${server} (socket ${pusher.connection.socket_id})`);
    } else if (current === 'unavailable' || current === 'failed') {
      banner('failed', `Cannot reach the realtime server at ${server}; ${current === 'failed' ? 'this browser cannot use it' : 'retrying'}.`);
    } else if (current === 'connecting') {
      banner('connecting', `Connecting to the realtime server at ${server}…`);
    } else if (current === 'disconnected') {
      banner('failed', `Disconnected from ${server}.`);
    }
  });

  /** Subscribes and records every event and refusal on the channel. */
  function subscribe(name, handlers) {
    const channel = pusher.subscribe(name);
    channel.bind('pusher:subscription_succeeded', () => chat.subscribed.add(name));
    channel.bind('pusher:subscription_error', (error) => {
      chat.subscriptionErrors.push({ channel: name, status: error.status, error: error.error || String(error.type) });
      showError(`Cannot join ${name}: ${error.error || error.type} (${error.status})`);
    });
    for (const [event, handler] of Object.entries(handlers)) {
      channel.bind(event, (data) => {
        handler(data);
        if (!event.startsWith('pusher:')) chat.received.push({ channel: name, event, data, at: now() });
      });
    }
    return channel;
  }

  // This user's own channels, for as long as the page is open.
  subscribe(`private-user-${me.id}`, {
    notification: (n) => addItem('notifications', [{ tag: 'strong', text: n.type }, ` ${n.message}`]),
  });
  subscribe('system', {
    announcement: (a) => addItem('announcements', [{ tag: 'strong', text: a.priority }, ` ${a.message}`]),
  });
  subscribe(`private-customer-${me.id}`, {
    'order-status-changed': (o) => {
      addItem('orders', [{ tag: 'strong', text: o.order_id }, ` is ${o.status} `, statusForm(o.order_id, o.status)]);
    },
  });

  // pusher:signin, so that events sent to this user reach this connection.
  pusher.signin();
  pusher.user.bind('direct-message', (d) => {
    addItem('direct', [{ tag: 'strong', text: d.from }, ` ${d.message}`]);
    chat.received.push({ channel: `#server-to-user-${me.id}`, event: 'direct-message', data: d, at: now() });
  });

  /** A small form to move an order to its next status. */
  function statusForm(orderId, current) {
    const next = { placed: 'packed', packed: 'shipped', shipped: 'delivered' }[current];
    const span = document.createElement('span');
    if (!next) return span;
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = `Mark ${next}`;
    button.addEventListener('click', () => {
      button.disabled = true;
      post(`/api/orders/${encodeURIComponent(orderId)}/status`, { status: next }).catch(() => (button.disabled = false));
    });
    span.append(button);
    return span;
  }

  // --- the room -------------------------------------------------------------

  function renderMembers(members) {
    const list = $('members');
    list.replaceChildren();
    members.each((member) => {
      const li = document.createElement('li');
      li.dataset.userId = member.id;
      li.textContent = member.info.name + (member.id === me.id ? ' (you)' : '');
      list.append(li);
    });
    $('member-count').textContent = String(members.count);
  }

  function renderMessage(m, origin) {
    return addItem('messages', [{ tag: 'strong', text: m.user_name }, `: ${m.message}`], { origin, userId: String(m.user_id) });
  }

  function setJoined(room) {
    chat.room = room;
    $('room-name').textContent = room || $('room-input').value;
    $('room-state').textContent = room ? '(joined)' : '(not joined)';
    $('leave').disabled = !room;
    $('join').disabled = !!room;
    for (const form of [$('message-form'), $('secret-form')]) {
      for (const el of form.elements) el.disabled = !room;
    }
  }

  function waitSubscribed(channel) {
    return new Promise((resolve, reject) => {
      if (channel.subscribed) return resolve();
      channel.bind('pusher:subscription_succeeded', () => resolve());
      channel.bind('pusher:subscription_error', (e) => reject(new Error(e.error || 'subscription refused')));
    });
  }

  async function join(room) {
    const room_channel = subscribe(`chat-room-${room}`, {
      'new-message': (m) => renderMessage(m, 'pusher'),
      'user-joined': (j) => addItem('messages', [{ tag: 'em', text: `${j.user_name} joined` }], { origin: 'pusher' }),
      'user-left': (l) => addItem('messages', [{ tag: 'em', text: `${l.user_name} left` }], { origin: 'pusher' }),
    });
    const presence = subscribe(`presence-chat-room-${room}`, {
      'pusher:subscription_succeeded': (members) => renderMembers(members),
      'pusher:member_added': () => renderMembers(presence.members),
      'pusher:member_removed': () => renderMembers(presence.members),
    });
    // Presence changes are recorded too (the handlers above skip pusher: events).
    presence.bind('pusher:member_added', (m) => chat.received.push({ channel: presence.name, event: 'member_added', data: m, at: now() }));
    presence.bind('pusher:member_removed', (m) => chat.received.push({ channel: presence.name, event: 'member_removed', data: m, at: now() }));
    subscribe(`private-encrypted-chat-room-${room}`, {
      'secret-message': (m) => addItem('messages', [{ tag: 'strong', text: m.user_name }, ` (encrypted) ${m.message}`], { origin: 'encrypted' }),
    });
    await Promise.all([waitSubscribed(room_channel), waitSubscribed(presence)]);
    setJoined(room);
    await post(`/api/rooms/${encodeURIComponent(room)}/join`);
  }

  async function leave() {
    const room = chat.room;
    setJoined(null);
    for (const name of [`chat-room-${room}`, `presence-chat-room-${room}`, `private-encrypted-chat-room-${room}`]) {
      pusher.unsubscribe(name);
      chat.subscribed.delete(name);
    }
    $('members').replaceChildren();
    $('member-count').textContent = '0';
    await post(`/api/rooms/${encodeURIComponent(room)}/leave`);
  }

  $('join-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const room = $('room-input').value.trim();
    if (!/^[A-Za-z0-9_-]{1,40}$/.test(room)) {
      showError('A room name is 1 to 40 of A-Z a-z 0-9 _ -');
      return;
    }
    join(room).catch((e) => showError(`Cannot join ${room}: ${e.message}`));
  });
  $('leave').addEventListener('click', () => leave().catch(() => {}));

  $('message-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('message');
    const message = input.value.trim();
    if (!message) return;
    // Shown at once here; the sender's socket_id keeps the broadcast from
    // echoing it back to this page.
    renderMessage({ user_name: me.name, user_id: me.id, message }, 'local');
    input.value = '';
    post(`/api/rooms/${encodeURIComponent(chat.room)}/messages`, { message, socket_id: pusher.connection.socket_id }).catch(() => {});
  });

  $('secret-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('secret');
    const message = input.value.trim();
    if (!message) return;
    input.value = '';
    post(`/api/rooms/${encodeURIComponent(chat.room)}/secrets`, { message }).catch(() => {});
  });

  $('notify-form').addEventListener('submit', (event) => {
    event.preventDefault();
    post('/api/notifications', { user_id: $('notify-user').value.trim(), message: $('notify-message').value })
      .then(() => ($('notify-message').value = ''))
      .catch(() => {});
  });

  $('direct-form').addEventListener('submit', (event) => {
    event.preventDefault();
    post(`/api/users/${encodeURIComponent($('direct-user').value.trim())}/events`, { message: $('direct-message').value })
      .then(() => ($('direct-message').value = ''))
      .catch(() => {});
  });

  $('announce-form').addEventListener('submit', (event) => {
    event.preventDefault();
    post('/api/announcements', { message: $('announce-message').value })
      .then(() => ($('announce-message').value = ''))
      .catch(() => {});
  });

  $('order-form').addEventListener('submit', (event) => {
    event.preventDefault();
    post('/api/orders').catch(() => {});
  });
})();
