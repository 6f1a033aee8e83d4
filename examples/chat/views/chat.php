<?php
/**
 * @var App\Services\User $user
 * @var string $room
 * @var string $realtimeConfig JSON for pusher-js (no secret), HTML-safe (JSON_HEX_TAG)
 */
$e = static fn (string $s): string => htmlspecialchars($s, ENT_QUOTES);
$title = "#{$room} · Chat";
require __DIR__ . '/layout-head.php';
?>
<body>
<script type="application/json" id="realtime-config"><?= $realtimeConfig ?></script>
<script type="application/json" id="chat-context"><?= json_encode(['user' => ['id' => $user->getId(), 'name' => $user->getName()], 'room' => $room], JSON_HEX_TAG | JSON_HEX_AMP | JSON_UNESCAPED_UNICODE) ?></script>
<header>
  <h1>Chat <span class="who">as <strong><?= $e($user->getName()) ?></strong> <span class="muted">(id <?= $e($user->getId()) ?>)</span></span></h1>
  <form method="post" action="/signout"><button type="submit">Sign out</button></form>
</header>
<p id="connection" class="banner connecting" role="status" aria-live="polite">Connecting to the realtime server…</p>

<main>
  <section class="room" aria-labelledby="room-title">
    <h2 id="room-title">Room <span id="room-name"><?= $e($room) ?></span> <span id="room-state" class="muted">(not joined)</span></h2>
    <form id="join-form" class="row">
      <label for="room-input">Room</label>
      <input id="room-input" name="room" value="<?= $e($room) ?>" required pattern="[A-Za-z0-9_\-]{1,40}" maxlength="40">
      <button type="submit" id="join">Join</button>
      <button type="button" id="leave" disabled>Leave</button>
    </form>

    <h3 id="members-title">Here now <span id="member-count" class="muted">0</span></h3>
    <ul id="members" aria-labelledby="members-title"></ul>

    <h3 id="messages-title">Messages</h3>
    <ol id="messages" aria-labelledby="messages-title" aria-live="polite"></ol>

    <form id="message-form" class="row">
      <label for="message">Message</label>
      <input id="message" name="message" required maxlength="2000" autocomplete="off" disabled>
      <button type="submit" disabled>Send</button>
    </form>
    <form id="secret-form" class="row">
      <label for="secret">Encrypted message</label>
      <input id="secret" name="message" required maxlength="2000" autocomplete="off" disabled>
      <button type="submit" disabled>Send encrypted</button>
    </form>
  </section>

  <aside>
    <section aria-labelledby="notifications-title">
      <h2 id="notifications-title">Notifications <span class="muted">(private-user-<?= $e($user->getId()) ?>)</span></h2>
      <ul id="notifications"></ul>
      <form id="notify-form">
        <label for="notify-user">User id</label>
        <input id="notify-user" name="user_id" required pattern="[a-z0-9\-]{1,32}">
        <label for="notify-message">Notification</label>
        <input id="notify-message" name="message" required maxlength="2000">
        <button type="submit">Notify</button>
      </form>
    </section>

    <section aria-labelledby="direct-title">
      <h2 id="direct-title">Direct <span class="muted">(signed-in connections)</span></h2>
      <ul id="direct"></ul>
      <form id="direct-form">
        <label for="direct-user">User id</label>
        <input id="direct-user" name="user_id" required pattern="[a-z0-9\-]{1,32}">
        <label for="direct-message">Direct message</label>
        <input id="direct-message" name="message" required maxlength="2000">
        <button type="submit">Send to user</button>
      </form>
    </section>

    <section aria-labelledby="announcements-title">
      <h2 id="announcements-title">Announcements <span class="muted">(system)</span></h2>
      <ul id="announcements"></ul>
      <form id="announce-form">
        <label for="announce-message">Announcement</label>
        <input id="announce-message" name="message" required maxlength="2000">
        <button type="submit">Announce</button>
      </form>
    </section>

    <section aria-labelledby="orders-title">
      <h2 id="orders-title">Orders <span class="muted">(private-customer-<?= $e($user->getId()) ?>)</span></h2>
      <ul id="orders"></ul>
      <form id="order-form">
        <button type="submit" id="place-order">Place an order</button>
      </form>
    </section>

    <p id="action-error" class="error" role="alert" hidden></p>
  </aside>
</main>
<script src="/assets/pusher-with-encryption.min.js"></script>
<script src="/assets/chat.js"></script>
</body>
</html>
