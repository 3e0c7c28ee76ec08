/* Starts GraphiQL against this server's /graphql. Served by UDS (no CDN, no inline script). */
(function () {
  "use strict";
  var url = window.location.origin + window.location.pathname;
  var fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: url.replace(/^http/, "ws"),
  });
  var query = [
    "# UDS GraphQL. Most fields need a token and a tenant: put them in the Headers tab,",
    '#   {"Authorization": "Bearer <uds token create ...>", "X-Tenant-ID": "<tenant>"}',
    "# The schema (Docs) needs neither in dev mode.",
    "{",
    "  me { subject tenants { role tenant { slug } } }",
    "}",
    "",
  ].join("\n");
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultQuery: query,
    })
  );
})();
