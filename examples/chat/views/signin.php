<?php $title = 'Sign in · Chat'; require __DIR__ . '/layout-head.php'; ?>
<body>
<main class="signin">
  <h1>Chat</h1>
  <p>An example app on pusher-relay: choose a name to sign in (no password; the name is your identity here).</p>
  <form method="post" action="/signin">
    <label for="name">Your name</label>
    <input id="name" name="name" required maxlength="40" autocomplete="nickname" autofocus>
    <button type="submit">Sign in</button>
  </form>
</main>
</body>
</html>
