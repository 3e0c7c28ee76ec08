/* Starts GraphiQL against this server's /graphql. Served by UDS (no CDN, no inline script). */
(function () {
  "use strict";
  var url = window.location.origin + window.location.pathname;
  var fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: url.replace(/^http/, "ws"),
  });
  var headers = JSON.stringify(
    { Authorization: "Bearer <token from `uds token create`>", "X-Tenant-ID": "<tenant slug>" },
    null,
    2
  );
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultHeaders: headers,
      defaultQuery: "{\n  me { subject tenants { slug role } }\n}\n",
    })
  );
})();
