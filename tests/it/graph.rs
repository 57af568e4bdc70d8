//! `stevedore graph`: the layer graph of several recipes, checked against what builds made
//! (`stevedore inspect` of the images) and rendered by graphviz's own `dot`.

use crate::apt_support::{self, Item, RepoSpec, Server, TestDeb, build_repo, fixtures};
use crate::common::*;
use crate::registry_support::{Auth, TestRegistry};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// `stevedore graph --format json` of `recipes`.
fn graph_json(cache: &Path, recipes: &[&Path]) -> Value {
    let mut args = vec!["graph", "--format", "json"];
    args.extend(recipes.iter().map(|p| path_str(p)));
    let out = stevedore(cache, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("graph --format json prints JSON")
}

/// `stevedore graph` (DOT) of `recipes`.
fn graph_dot(cache: &Path, recipes: &[&Path]) -> String {
    let mut args = vec!["graph"];
    args.extend(recipes.iter().map(|p| path_str(p)));
    let out = stevedore(cache, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// The image whose recipe path ends with `file`.
fn image<'a>(g: &'a Value, file: &str) -> &'a Value {
    g["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["recipe"].as_str().is_some_and(|r| r.ends_with(file)))
        .unwrap_or_else(|| panic!("no image for {file} in {g:#}"))
}

fn layer<'a>(g: &'a Value, id: &str) -> &'a Value {
    g["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("no layer {id}"))
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// `(digest, size)` of each layer of an image, as `stevedore inspect --json` reads its manifest.
fn inspected_layers(target: &str) -> Vec<(String, u64)> {
    let out = Command::new(BIN)
        .args(["inspect", "--json", target])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The graph's `(digest, size)` of each layer of an image, bottom first.
fn graph_layers(g: &Value, image: &Value) -> Vec<(String, u64)> {
    ids(&image["layers"])
        .iter()
        .map(|id| {
            let l = layer(g, id);
            assert_eq!(l["state"], "cached", "{l}");
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// graphviz's `dot -Tsvg` over `text`: it must parse it and draw every node.
fn render_with_graphviz(text: &str) -> String {
    require_tool("dot", "graphviz");
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dot -Tsvg: {}", stderr(&out));
    let svg = stdout(&out);
    assert!(svg.contains("<svg"), "{svg}");
    svg
}

/// Node statements of a DOT text (`"id" [`), each id with how often it is declared.
fn dot_nodes(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')?
                .split_once("\" [")
                .map(|(id, _)| id.to_string())
        })
        .collect()
}

/// A base recipe with a package layer from a generated, signed apt repository, and two apps
/// `from` it with a file layer each.
struct TwoApps {
    t: tempfile::TempDir,
    _server: Server,
    _repo: apt_support::Repo,
}

impl TwoApps {
    fn new() -> TwoApps {
        apt_support::require_tool("gpg", "gnupg");
        let mut tool = TestDeb::new("tool", "1.0");
        tool.items
            .push(Item::File("./usr/share/tool/data", vec![7; 5000], 0o644));
        let repo = build_repo(&RepoSpec::new(vec![tool]));
        let server = Server::serve(repo.root());
        let t = tempdir();
        write(
            &t.path().join("base.toml"),
            format!(
                "[image]\nname = \"localhost/base\"\ntags = [\"1\"]\n\n[[sources]]\nmirrors = [\"{}\"]\nsuites = [\"stable\"]\ncomponents = [\"main\"]\nkeyring = \"{}\"\n\n[[layers]]\nname = \"tools\"\npackages = [\"tool\"]\n",
                server.url(),
                fixtures().join("test-keyring.gpg").display()
            ),
        );
        for app in ["one", "two"] {
            write(
                &t.path().join(format!("{app}/index.html")),
                format!("{app}\n"),
            );
            write(
                &t.path().join(format!("{app}.toml")),
                format!(
                    "from = \"base.toml\"\n\n[image]\nname = \"localhost/{app}\"\n\n[[layers]]\nname = \"site\"\nfiles = [{{ src = \"{app}\", dest = \"/srv/{app}\" }}]\n"
                ),
            );
        }
        TwoApps {
            t,
            _server: server,
            _repo: repo,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.t.path().join(name)
    }
}

/// Two apps on one base: the base's layer is one node that both stand on, each app's own layer
/// is its own node; what was built shows the digests and sizes of the built image's manifest,
/// what was not says "to build". The DOT is what graphviz renders, one node per layer, the same
/// whatever order the recipes are given in.
#[test]
fn two_apps_on_one_base_share_its_layer_node() {
    let s = TwoApps::new();
    let (one, two) = (s.path("one.toml"), s.path("two.toml"));
    let cache = s.path("cache");
    let layout = s.path("out");
    build_ok(
        &cache,
        &[path_str(&one), "-o", &format!("oci:{}", layout.display())],
    );

    let g = graph_json(&cache, &[&one, &two]);
    assert_eq!(g["images"].as_array().unwrap().len(), 3, "{g:#}");
    assert_eq!(g["layers"].as_array().unwrap().len(), 3, "{g:#}");
    let (base, app1, app2) = (
        image(&g, "base.toml"),
        image(&g, "one.toml"),
        image(&g, "two.toml"),
    );
    assert_eq!(base["requested"], false);
    assert_eq!(app1["requested"], true);
    assert_eq!(app2["requested"], true);
    assert_eq!(base["names"][0], "localhost/base:1");
    assert!(
        app1["names"][0]
            .as_str()
            .unwrap()
            .starts_with("localhost/one:"),
        "{app1}"
    );
    assert_eq!(app1["from"], base["id"]);
    assert_eq!(app2["from"], base["id"]);
    assert_eq!(base["from"], Value::Null);
    let (l1, l2) = (ids(&app1["layers"]), ids(&app2["layers"]));
    assert_eq!(ids(&base["layers"]), vec![l1[0].clone()]);
    assert_eq!(l1.len(), 2);
    assert_eq!(l2.len(), 2);
    assert_eq!(l1[0], l2[0], "the base layer is shared");
    assert_ne!(l1[1], l2[1]);
    assert_eq!(layer(&g, &l1[1])["parent"], l1[0].as_str());
    assert_eq!(layer(&g, &l2[1])["parent"], l1[0].as_str());
    assert_eq!(layer(&g, &l1[0])["name"], "tools");

    // Built: the manifest's layers, digest and size, in order.
    assert_eq!(
        graph_layers(&g, app1),
        inspected_layers(&format!("oci:{}", layout.display()))
    );
    let unbuilt = layer(&g, &l2[1]);
    assert_eq!(unbuilt["state"], "to-build");
    assert_eq!(unbuilt["size"], Value::Null);
    assert_eq!(unbuilt["digest"], Value::Null);

    let text = graph_dot(&cache, &[&one, &two]);
    let nodes = dot_nodes(&text);
    let unique: BTreeSet<&String> = nodes.iter().collect();
    assert_eq!(nodes.len(), 6, "3 layers and 3 images:\n{text}");
    assert_eq!(unique.len(), 6, "each node once:\n{text}");
    for l in [&l1[0], &l1[1], &l2[1]] {
        assert!(unique.contains(l), "{l} missing:\n{text}");
    }
    assert!(
        text.contains(&format!("\"{}\" -> \"{}\";", l1[0], l1[1])),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"{}\" -> \"{}\";", l1[0], l2[1])),
        "{text}"
    );
    let (size, digest) = (
        layer(&g, &l1[1])["size"].as_u64().unwrap(),
        layer(&g, &l1[1])["digest"].as_str().unwrap().to_string(),
    );
    assert!(text.contains(&digest[..19]), "{text}");
    let shown = if size < 1000 {
        format!("{size} B")
    } else {
        format!("{:.1} KB", size as f64 / 1000.0)
    };
    assert!(text.contains(&shown), "{shown}:\n{text}");
    assert!(text.contains("to build"), "{text}");
    assert_eq!(graph_dot(&cache, &[&two, &one]), text, "order-independent");

    let svg = render_with_graphviz(&text);
    for id in &unique {
        assert!(
            svg.contains(&format!("<title>{id}</title>")),
            "{id} not drawn"
        );
    }
    let out = stevedore(
        &cache,
        &["graph", "--format", "svg", path_str(&one), path_str(&two)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("<svg"));
}

/// `--format svg` without graphviz says which package to install (exit 1: a tool missing on
/// this machine), and prints nothing on stdout.
#[test]
fn svg_without_graphviz_names_the_package() {
    let t = tempdir();
    write(&t.path().join("site/a.txt"), "a");
    let recipe = t.path().join("r.toml");
    write(
        &recipe,
        "[[layers]]\nname = \"site\"\nfiles = [{ src = \"site\", dest = \"/srv\" }]\n",
    );
    let empty = t.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let out = stevedore_env(
        &t.path().join("cache"),
        &["graph", "--format", "svg", path_str(&recipe)],
        &[("PATH", path_str(&empty))],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("apt-get install graphviz"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

/// A recipe on a registry image: the registry image is a node by its pinned manifest digest,
/// its layers (digest and size from its manifest) are below the recipe's, and the recipe's
/// image is `from` it.
#[test]
fn a_registry_base_is_drawn_by_its_digest() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempdir();
    write(&t.path().join("base/site/index.html"), "base\n");
    write(
        &t.path().join("base/base.toml"),
        "[image]\nname = \"localhost/base\"\n\n[[layers]]\nname = \"site\"\nfiles = [{ src = \"site\", dest = \"/srv/www\" }]\n",
    );
    let cache = t.path().join("cache");
    let reference = format!("{}/graph/base:v1", reg.host());
    let base_layout = t.path().join("base-out");
    let pushed = build_ok(
        &cache,
        &[
            path_str(&t.path().join("base/base.toml")),
            "--push",
            &reference,
            "-o",
            &format!("oci:{}", base_layout.display()),
        ],
    );
    write(&t.path().join("app/files/app.txt"), "app\n");
    let app = t.path().join("app/app.toml");
    write(
        &app,
        format!(
            "from = \"{reference}\"\n\n[image]\nname = \"localhost/app\"\n\n[[layers]]\nname = \"app\"\nfiles = [{{ src = \"files\", dest = \"/srv/app\" }}]\n"
        ),
    );
    let g = graph_json(&cache, &[&app]);
    let images = g["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{g:#}");
    let registry = images.iter().find(|i| i["kind"] == "registry").unwrap();
    let recipe = image(&g, "app.toml");
    assert_eq!(registry["digest"], pushed.as_str());
    assert_eq!(registry["names"][0], reference.as_str());
    assert_eq!(recipe["from"], registry["id"]);
    let base_layers = ids(&registry["layers"]);
    let app_layers = ids(&recipe["layers"]);
    assert_eq!(app_layers.len(), base_layers.len() + 1);
    assert_eq!(app_layers[..base_layers.len()], base_layers[..]);
    let drawn: Vec<(String, u64)> = base_layers
        .iter()
        .map(|id| {
            let l = layer(&g, id);
            assert_eq!(l["state"], "registry");
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        drawn,
        inspected_layers(&format!("oci:{}", base_layout.display()))
    );
    let top = layer(&g, app_layers.last().unwrap());
    assert_eq!(top["state"], "to-build");
    assert_eq!(top["parent"], base_layers.last().unwrap().as_str());
    let text = graph_dot(&cache, &[&app]);
    assert!(text.contains(&format!("@{pushed}")), "{text}");
    render_with_graphviz(&text);
}

/// The two real recipes, built once each from the real mirrors (in a folder with no
/// keyrings/: the built-in keyrings verify bookworm and xenial): the graph of both names every
/// image of webapp's chain and xenial's, with each image's layers, digests and sizes those of
/// its built manifest, and graphviz renders it.
#[test]
fn webapp_and_xenial_tomcat7_graph_matches_their_built_images() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = tempdir();
    std::fs::create_dir(t.path().join("recipes")).unwrap();
    let names = [
        "debian-bookworm.toml",
        "openjdk.toml",
        "tomcat.toml",
        "webapp.toml",
        "ubuntu-xenial-tomcat7.toml",
    ];
    for n in names {
        std::fs::copy(
            repo.join("recipes").join(n),
            t.path().join("recipes").join(n),
        )
        .unwrap();
    }
    for war in [
        "fixtures/war/jakarta/hello-jakarta.war",
        "fixtures/war/javax/hello-javax.war",
    ] {
        std::fs::create_dir_all(t.path().join(war).parent().unwrap()).unwrap();
        std::fs::copy(repo.join(war), t.path().join(war)).unwrap();
    }
    assert!(!t.path().join("keyrings").exists() && !t.path().join("recipes/keyrings").exists());
    let cache = t.path().join("cache");
    warm_cache(&["webapp.toml", "ubuntu-xenial-tomcat7.toml"], &cache);
    let webapp = t.path().join("recipes/webapp.toml");
    let xenial = t.path().join("recipes/ubuntu-xenial-tomcat7.toml");
    let mut built = Vec::new();
    for (recipe, out) in [(&webapp, "webapp"), (&xenial, "xenial")] {
        let layout = t.path().join(out);
        build_ok(
            &cache,
            &[path_str(recipe), "-o", &format!("oci:{}", layout.display())],
        );
        built.push(format!("oci:{}", layout.display()));
    }

    let g = graph_json(&cache, &[&webapp, &xenial]);
    assert_eq!(
        g["images"].as_array().unwrap().len(),
        5,
        "webapp's chain of 4 and xenial"
    );
    let (w, x) = (
        image(&g, "webapp.toml"),
        image(&g, "ubuntu-xenial-tomcat7.toml"),
    );
    assert_eq!(graph_layers(&g, w), inspected_layers(&built[0]));
    assert_eq!(graph_layers(&g, x), inspected_layers(&built[1]));
    // webapp stands on tomcat, on openjdk, on bookworm: each the prefix of the next.
    let mut below = image(&g, "webapp.toml");
    for parent in ["tomcat.toml", "openjdk.toml", "debian-bookworm.toml"] {
        let p = image(&g, parent);
        assert_eq!(below["from"], p["id"]);
        let (lower, upper) = (ids(&p["layers"]), ids(&below["layers"]));
        assert_eq!(upper[..lower.len()], lower[..], "{parent}");
        below = p;
    }
    assert_eq!(x["from"], Value::Null);
    assert_eq!(ids(&x["layers"]).len(), 4);
    // Nothing is shared between a Debian and an Ubuntu stack.
    let wl: BTreeSet<String> = ids(&w["layers"]).into_iter().collect();
    assert!(ids(&x["layers"]).iter().all(|l| !wl.contains(l)));

    let text = graph_dot(&cache, &[&webapp, &xenial]);
    let nodes = dot_nodes(&text);
    assert_eq!(
        nodes.len(),
        g["layers"].as_array().unwrap().len() + 5,
        "{text}"
    );
    assert!(!text.contains("to build"), "everything was built:\n{text}");
    render_with_graphviz(&text);
}
