//! The recipe file as written: serde structs that mirror the TOML, with spans kept on every
//! value that validation may need to point at. Unknown keys are refused (`deny_unknown_fields`)
//! so a typo is an error, not a silently ignored setting.

use serde::Deserialize;
use toml::Spanned;

pub type Str = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecipeFile {
    /// `scratch` or a path to another recipe, relative to this file.
    pub from: Option<Str>,
    /// The folder file sources are read from, relative to this file's folder (default: it).
    pub context: Option<Str>,
    pub image: Option<ImageSection>,
    pub config: Option<ConfigSection>,
    /// apt sources for package layers; a recipe without them uses its base's.
    #[serde(default)]
    pub sources: Vec<SourcesDecl>,
    #[serde(default)]
    pub users: Vec<UserDecl>,
    #[serde(default)]
    pub groups: Vec<GroupDecl>,
    #[serde(default)]
    pub layers: Vec<LayerDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSection {
    pub name: Option<Str>,
    pub tags: Option<Vec<Str>>,
    /// `oci` (default) or `docker` (Docker v2.2 media types, for old registries).
    pub format: Option<Str>,
    /// `gzip` (default) or `zstd`.
    pub compression: Option<Str>,
    pub compression_level: Option<Spanned<i64>>,
    /// `os/arch[/variant]`, default `linux/` + the host architecture.
    pub platform: Option<Str>,
    /// Several `os/arch[/variant]`: one image each and an image index over them.
    pub platforms: Option<Spanned<Vec<Str>>>,
    /// Manifest annotations.
    pub annotations: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigSection {
    pub entrypoint: Option<Spanned<Vec<String>>>,
    pub cmd: Option<Spanned<Vec<String>>>,
    /// A table keeps the recipe's order (toml `preserve_order`), which is the order in the image.
    pub env: Option<Spanned<toml::Table>>,
    pub workdir: Option<Str>,
    pub user: Option<Str>,
    pub exposed_ports: Option<Vec<Str>>,
    pub volumes: Option<Vec<Str>>,
    pub labels: Option<Spanned<toml::Table>>,
    pub stop_signal: Option<Str>,
    pub shell: Option<Spanned<Vec<String>>>,
    pub healthcheck: Option<HealthcheckDecl>,
    pub onbuild: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthcheckDecl {
    pub test: Spanned<Vec<String>>,
    pub interval: Option<Str>,
    pub timeout: Option<Str>,
    pub start_period: Option<Str>,
    pub start_interval: Option<Str>,
    pub retries: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourcesDecl {
    /// Mirror URLs of one archive; later ones are fallbacks.
    pub mirrors: Spanned<Vec<String>>,
    pub suites: Spanned<Vec<String>>,
    pub components: Option<Spanned<Vec<String>>>,
    /// OpenPGP keyring that signs the archive, relative to the recipe.
    pub keyring: Option<Str>,
    /// Only for local test repositories: skips signature checks.
    pub allow_unsigned: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UserDecl {
    pub name: Str,
    pub uid: Spanned<i64>,
    pub gid: Option<Spanned<i64>>,
    pub home: Option<Str>,
    pub shell: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GroupDecl {
    pub name: Str,
    pub gid: Spanned<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LayerDecl {
    pub name: Str,
    /// Debian packages to install in this layer (with their dependencies not already below).
    pub packages: Option<Spanned<Vec<String>>>,
    /// Add the minbase set (Essential and Priority: required), as `debootstrap --variant=minbase`.
    pub minbase: Option<Spanned<bool>>,
    /// Also install Recommends (off by default, as in most container images).
    pub recommends: Option<Spanned<bool>>,
    /// Lay out `/bin`, `/sbin`, `/lib*` as symlinks into `/usr` (default true; false for
    /// releases from before the merge, such as Ubuntu xenial).
    pub merged_usr: Option<Spanned<bool>>,
    #[serde(default)]
    pub files: Vec<FilesDecl>,
    #[serde(default)]
    pub dirs: Vec<DirDecl>,
    #[serde(default)]
    pub symlinks: Vec<SymlinkDecl>,
    #[serde(default)]
    pub hardlinks: Vec<HardlinkDecl>,
    /// A WAR to explode under `dest`, split Jib-style into up to four layers.
    pub war: Option<WarDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WarDecl {
    pub src: Str,
    /// The exploded web application's folder, e.g. `/var/lib/tomcat10/webapps/ROOT`.
    pub dest: Str,
    /// Mode of every file (default 0644; the zip's own modes are ignored).
    pub mode: Option<Spanned<toml::Value>>,
    /// Mode of the folders (default 0755).
    pub dir_mode: Option<Spanned<toml::Value>>,
    pub owner: Option<Str>,
    /// Largest total uncompressed size of the WAR's entries: bytes, or a string with a unit
    /// ("512 MiB", "8 GiB"); default 4 GiB.
    pub max_size: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FilesDecl {
    pub src: Str,
    pub dest: Str,
    /// Mode for files; a string of octal digits ("0644") or a TOML octal integer (0o644).
    pub mode: Option<Spanned<toml::Value>>,
    /// Mode for directories the item creates.
    pub dir_mode: Option<Spanned<toml::Value>>,
    pub owner: Option<Str>,
    #[serde(default)]
    pub exclude: Vec<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DirDecl {
    pub path: Str,
    pub mode: Option<Spanned<toml::Value>>,
    pub owner: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SymlinkDecl {
    pub path: Str,
    pub target: Str,
    pub owner: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HardlinkDecl {
    pub path: Str,
    pub target: Str,
}
