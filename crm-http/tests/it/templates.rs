//! Templates: CRUD and the render preview.

use crm_core::Role;
use serde_json::json;

use crate::helpers::{Api, Harness, create_template, id};

pub async fn crud_and_render(api: &Api, token: &str) {
    let t = api
        .post("/api/v1/templates")
        .bearer(token)
        .json(json!({ "name": "welcome", "body": "Oi {{name}}, use o cupom {{ coupon }}!", "category": "marketing" }))
        .send()
        .await
        .ok_json(201);
    let tid = id(&t);
    assert_eq!(t["language"], "pt_BR", "{t}");
    assert_eq!(t["variables"], json!(["name", "coupon"]));
    api.post("/api/v1/templates")
        .bearer(token)
        .json(json!({ "name": "welcome", "body": "again" }))
        .send()
        .await
        .problem(409, "conflict");
    api.post("/api/v1/templates")
        .bearer(token)
        .json(json!({ "name": "Bad Name", "body": "x" }))
        .send()
        .await
        .problem(422, "validation");
    api.post("/api/v1/templates")
        .bearer(token)
        .json(json!({ "name": "broken", "body": "Oi {{name" }))
        .send()
        .await
        .problem(422, "validation");
    let english = create_template(api, token, "welcome_en", "Hi {{name}}").await;

    let got = api.get(&format!("/api/v1/templates/{tid}")).bearer(token).send().await.ok_json(200);
    assert_eq!(got, t);
    let list = api.get("/api/v1/templates").bearer(token).send().await.ok_json(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let page = api.get("/api/v1/templates?limit=1").bearer(token).send().await.ok_json(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_string());

    let render = |body: serde_json::Value| {
        let path = format!("/api/v1/templates/{tid}/render");
        async move { api.post(&path).bearer(token).json(body).send().await }
    };
    let r = render(json!({ "variables": { "name": "Ana", "coupon": "BEMVINDO" } })).await.ok_json(200);
    assert_eq!(r["rendered"], "Oi Ana, use o cupom BEMVINDO!");
    let p = render(json!({ "variables": { "name": "Ana" } })).await.problem(422, "validation");
    assert_eq!(p["field"], "variables");
    assert!(p["detail"].as_str().unwrap().contains("coupon"), "{p}");
    let p = render(json!({ "mode": "strict" })).await.problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("coupon, name"), "names every missing one: {p}");
    let r = render(json!({ "variables": { "name": "Ana" }, "mode": "lenient" })).await.ok_json(200);
    assert_eq!(r["rendered"], "Oi Ana, use o cupom {{ coupon }}!");
    render(json!({ "mode": "sloppy" })).await.problem(422, "validation");

    let replaced = api
        .put(&format!("/api/v1/templates/{tid}"))
        .bearer(token)
        .json(json!({ "name": "welcome", "body": "Olá {{first_name}}" }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(replaced["id"], t["id"]);
    assert_eq!(replaced["variables"], json!(["first_name"]));
    assert_eq!(replaced["created_at"], t["created_at"]);
    api.put(&format!("/api/v1/templates/{tid}"))
        .bearer(token)
        .json(json!({ "name": "welcome_en", "language": "pt_BR", "body": "clash" }))
        .send()
        .await
        .problem(409, "conflict");
    api.get(&format!("/api/v1/templates/{}", id(&english))).bearer(token).send().await.expect(200);

    api.delete(&format!("/api/v1/templates/{tid}")).bearer(token).send().await.expect(204);
    api.get(&format!("/api/v1/templates/{tid}")).bearer(token).send().await.problem(404, "not-found");
    api.delete(&format!("/api/v1/templates/{tid}")).bearer(token).send().await.problem(404, "not-found");
    api.post(&format!("/api/v1/templates/{tid}/render"))
        .bearer(token)
        .json(json!({}))
        .send()
        .await
        .problem(404, "not-found");
    api.put(&format!("/api/v1/templates/{tid}"))
        .bearer(token)
        .json(json!({ "name": "welcome", "body": "x" }))
        .send()
        .await
        .problem(404, "not-found");
}

#[tokio::test]
async fn crud_and_render_in_memory() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    crud_and_render(&h.api, &token).await;
}

#[tokio::test]
async fn agents_read_and_render_but_do_not_edit_templates() {
    let h = Harness::memory().await;
    let (a, admin) = h.account(Role::Admin).await;
    let agent = h.key(a, Role::Agent).await;
    let t = create_template(&h.api, &admin, "hello", "Oi {{name}}").await;
    let tid = id(&t);
    h.api.get(&format!("/api/v1/templates/{tid}")).bearer(&agent).send().await.expect(200);
    h.api
        .post(&format!("/api/v1/templates/{tid}/render"))
        .bearer(&agent)
        .json(json!({ "variables": { "name": "Ana" } }))
        .send()
        .await
        .expect(200);
    h.api
        .post("/api/v1/templates")
        .bearer(&agent)
        .json(json!({ "name": "x", "body": "x" }))
        .send()
        .await
        .problem(403, "forbidden");
    h.api
        .put(&format!("/api/v1/templates/{tid}"))
        .bearer(&agent)
        .json(json!({ "name": "hello", "body": "changed" }))
        .send()
        .await
        .problem(403, "forbidden");
    h.api.delete(&format!("/api/v1/templates/{tid}")).bearer(&agent).send().await.problem(403, "forbidden");
    let after = h.api.get(&format!("/api/v1/templates/{tid}")).bearer(&agent).send().await.ok_json(200);
    assert_eq!(after, t);
}
