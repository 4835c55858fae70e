// The whole frame in one pass: every panel pixel inside the lens's valid radius sends
// red, green and blue through the lens model (evaluated per pixel: each channel's
// polynomial, its own centre and coefficients, the chromatic aberration correction) and
// composes the layers where each channel looks. One draw per layer, back to front: each
// channel's view direction is rotated into the layer's space (projection: the app's
// render pose, the timewarp; quad: the quad's plane; ...) and the layer's sub-image is
// sampled there. Nothing is drawn outside the lens model's valid radius or outside the
// eye's field of view, where the panel stays black. Output is premultiplied and blends
// per channel: dst = colour + dst * (1 - that channel's alpha). Two ways to run it, the
// same per-pixel code:
// - fragment (vs_main, fs_main): a coarse grid over each eye's half (cells wholly beyond
//   the valid radius left out) is drawn per layer; blending is dual-source blending into
//   the sRGB panel;
// - compute (cs_main): one dispatch per layer over the panel region it can show in, blends
//   in a running linear colour (`accum`, half floats) and the eye's last layer writes the
//   panel once, sRGB-encoded. GPUs built for compute (few raster units) run this far
//   faster.

enable dual_source_blending;

struct Layer {
    eye_tan: vec4<f32>, // tan of the eye's field of view: left, right, up, down edges
    rot0: vec4<f32>,    // rows of the rotation display-eye -> layer; .w: kind (0 projection,
                        // 1 quad, 2 cylinder, 3 equirect by angles, 4 equirect by
                        // scale and bias, 5 cube)
    rot1: vec4<f32>,    // .w: flags (1: use source alpha, 2: unpremultiplied)
    rot2: vec4<f32>,    // .w: array layer (cube: of its +X face)
    param: vec4<f32>,   // projection: the layer's tangents; others: the eye's position in
                        // layer space (.w: equirect by scale and bias: the v bias)
    rect: vec4<f32>,    // sub-image: u0, v0, u1, v1
    size: vec4<f32>,    // quad: half width, half height; cylinder: radius, central angle,
                        // aspect ratio; equirect: radius, central horizontal angle, upper
                        // and lower vertical angles; equirect by scale and bias: radius,
                        // u scale, v scale, u bias
    eye: vec4<u32>,     // compute only: .y: region origin in panel pixels (x | y << 16),
                        // .z: region size (w | h << 16), .w: mode (1: first layer of the
                        // eye, 2: last, writes the panel) | eye index << 8
};

// Where a ray from `o` along `d` leaves a sphere (`cyl` false) or the cylinder around Y
// (`cyl` true) of radius `rad` around the origin, from the inside; -1 if it never does.
fn exit_distance(o: vec3<f32>, d: vec3<f32>, rad: f32, cyl: bool) -> f32 {
    var oo = o;
    var dd = d;
    if cyl {
        oo = vec3<f32>(o.x, 0.0, o.z);
        dd = vec3<f32>(d.x, 0.0, d.z);
    }
    let a = dot(dd, dd);
    let b = 2.0 * dot(oo, dd);
    let c = dot(oo, oo) - rad * rad;
    let disc = b * b - 4.0 * a * c;
    if a < 1e-12 || disc < 0.0 {
        return -1.0;
    }
    return (-b + sqrt(disc)) / (2.0 * a);
}

// One eye's lens (`LensModel::Polynomial`'s terms, per channel r, g, b):
//   p = (2u - 1, (2v - 1) / aspect) - centre
//   d = 1 / (1 + k1 r² + k2 r⁴ + k3 r⁶) + k4          r² = |p|²
//   eye-image position = 0.5 + (p d + centre) * factor
struct EyeLens {
    centre: array<vec4<f32>, 3>, // .xy; [0].z: 1 where there is no lens model
    k: array<vec4<f32>, 3>,      // k1, k2, k3, k4
    misc: vec4<f32>,             // factor (x, y), 1 / aspect, r² cutoff (green's p)
};

var<push_constant> pc: Layer;
@group(0) @binding(0) var tex: texture_2d_array<f32>;
@group(0) @binding(1) var samp: sampler;
// The eye being drawn's lens (the binding's offset picks the eye).
@group(0) @binding(2) var<uniform> lens: EyeLens;

// The projection layer's map from eye-image position e to its image (the sub-image's
// texture coordinates), a homography: (s w, t w, w) = H (e, 1), its rows. The eye's
// direction for e, rotated into the layer's space, projected onto its image plane
// (w: the depth in front of it) and mapped into the sub-image: all of it linear but the
// one division, so it is set up once per draw instead of per pixel and channel. With it,
// the image's size in texels.
struct Homography {
    r0: vec3<f32>,
    r1: vec3<f32>,
    r2: vec3<f32>,
    size: vec2<f32>,
};

fn projection_map() -> Homography {
    // e -> the direction (tangent space, z = -1).
    let a = mat3x3<f32>(
        vec3<f32>(pc.eye_tan.y - pc.eye_tan.x, 0.0, 0.0),
        vec3<f32>(0.0, pc.eye_tan.w - pc.eye_tan.z, 0.0),
        vec3<f32>(pc.eye_tan.x, pc.eye_tan.z, -1.0),
    );
    // Into the layer's space (the push constants hold the rotation's rows).
    let r = transpose(mat3x3<f32>(pc.rot0.xyz, pc.rot1.xyz, pc.rot2.xyz));
    // Onto the layer's image plane: u w = (x - l w) / (r - l), v w = (t w - y) / (t - b),
    // w = -z (l, r, t, b: the layer's tangents).
    let sx = 1.0 / (pc.param.y - pc.param.x);
    let sy = 1.0 / (pc.param.z - pc.param.w);
    let n = mat3x3<f32>(
        vec3<f32>(sx, 0.0, 0.0),
        vec3<f32>(0.0, -sy, 0.0),
        vec3<f32>(pc.param.x * sx, -pc.param.z * sy, -1.0),
    );
    // Into the sub-image.
    let sub = mat3x3<f32>(
        vec3<f32>(pc.rect.z - pc.rect.x, 0.0, 0.0),
        vec3<f32>(0.0, pc.rect.w - pc.rect.y, 0.0),
        vec3<f32>(pc.rect.x, pc.rect.y, 1.0),
    );
    let h = transpose(sub * n * r * a);
    return Homography(h[0], h[1], h[2], vec2<f32>(textureDimensions(tex)));
}

struct VsIn {
    @location(0) pos: vec2<f32>,
};

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    // Position in the eye's half of the panel, 0..1 across.
    @location(0) e: vec2<f32>,
    // The draw's projection map (projection layers), the same at every vertex.
    @location(1) @interpolate(flat) h0: vec3<f32>,
    @location(2) @interpolate(flat) h1: vec3<f32>,
    @location(3) @interpolate(flat) h2: vec3<f32>,
    @location(4) @interpolate(flat) size: vec2<f32>,
};

@vertex
fn vs_main(v: VsIn) -> VsOut {
    var o: VsOut;
    o.pos = vec4<f32>(v.pos, 0.0, 1.0);
    o.e = v.pos * 0.5 + 0.5;
    if PROJECTION {
        let h = projection_map();
        o.h0 = h.r0;
        o.h1 = h.r1;
        o.h2 = h.r2;
        o.size = h.size;
    }
    return o;
}

// The direction of eye-image position `e` (0..1 across the eye's field of view),
// rotated into the layer's space.
fn ray(e: vec2<f32>) -> vec3<f32> {
    let d = vec3<f32>(mix(pc.eye_tan.x, pc.eye_tan.y, e.x), mix(pc.eye_tan.z, pc.eye_tan.w, e.y), -1.0);
    return vec3<f32>(dot(pc.rot0.xyz, d), dot(pc.rot1.xyz, d), dot(pc.rot2.xyz, d));
}

fn outside(uv: vec2<f32>) -> bool {
    return uv.x < 0.0 || uv.y < 0.0 || uv.x > 1.0 || uv.y > 1.0;
}

// The layer's premultiplied colour at `uv` of its sub-image (array layer `face` past
// its own); transparent outside it.
fn sample_at(uv: vec2<f32>, face: i32) -> vec4<f32> {
    if outside(uv) {
        return vec4<f32>(0.0, 0.0, 0.0, 0.0);
    }
    return texel(mix(pc.rect.xy, pc.rect.zw, uv), face);
}

// The layer's premultiplied colour at texture coordinates `st`.
fn texel(st: vec2<f32>, face: i32) -> vec4<f32> {
    let flags = u32(pc.rot1.w);
    var c = textureSampleLevel(tex, samp, st, i32(pc.rot2.w) + face, 0.0);
    if (flags & 1u) == 0u {
        c.a = 1.0;
    }
    if (flags & 2u) != 0u {
        c = vec4<f32>(c.rgb * c.a, c.a);
    }
    return c;
}

// One function per kind of layer. `e`: the eye-image position a colour channel looks
// through; the result is the layer's premultiplied colour there, transparent where the
// layer does not cover it.

// One colour channel `c` (0 red, 1 green, 2 blue) of the projection layer at eye-image
// position `e`: (premultiplied value, alpha); (0, 0) where the layer does not cover it.
// Filtered by hand from a gather of just that channel: the same bilinear filter as a
// sample, but a software rasteriser converts a quarter of the texel values (it pays per
// converted value). The gather is taken at the point between the four texels the
// weights are for, half a texel from any other choice, so no implementation's rounding
// can pick others.
fn projection(h: Homography, e: vec2<f32>, c: u32) -> vec2<f32> {
    if outside(e) {
        return vec2<f32>(0.0);
    }
    let q = vec3<f32>(e, 1.0);
    let w = dot(h.r2, q);
    if w <= 1e-6 {
        return vec2<f32>(0.0);
    }
    let st = vec2<f32>(dot(h.r0, q), dot(h.r1, q)) / w;
    if st.x < pc.rect.x || st.y < pc.rect.y || st.x > pc.rect.z || st.y > pc.rect.w {
        return vec2<f32>(0.0);
    }
    let x = st * h.size - 0.5;
    let i = floor(x);
    let f = x - i;
    let at = (i + 1.0) / h.size;
    let layer = i32(pc.rot2.w);
    var g: vec4<f32>;
    switch c {
        case 0u: {
            g = textureGather(0, tex, samp, at, layer);
        }
        case 1u: {
            g = textureGather(1, tex, samp, at, layer);
        }
        default: {
            g = textureGather(2, tex, samp, at, layer);
        }
    }
    let v = bilerp(g, f);
    if !SOURCE_ALPHA {
        return vec2<f32>(v, 1.0);
    }
    let a = bilerp(textureGather(3, tex, samp, at, layer), f);
    if (u32(pc.rot1.w) & 2u) != 0u {
        return vec2<f32>(v * a, a);
    }
    return vec2<f32>(v, a);
}

// Bilinear filter of a gather's texels (x: (0, 1), y: (1, 1), z: (1, 0), w: (0, 0)) at
// fraction `f` between them.
fn bilerp(g: vec4<f32>, f: vec2<f32>) -> f32 {
    return mix(mix(g.w, g.z, f.x), mix(g.x, g.y, f.x), f.y);
}

fn quad(e: vec2<f32>) -> vec4<f32> {
    if outside(e) {
        return vec4<f32>(0.0);
    }
    let r = ray(e);
    if abs(r.z) <= 1e-6 {
        return vec4<f32>(0.0);
    }
    let t = -pc.param.z / r.z;
    if t <= 0.0 {
        return vec4<f32>(0.0);
    }
    let hit = pc.param.xy + t * r.xy;
    return sample_at(vec2<f32>(hit.x / (2.0 * pc.size.x) + 0.5, 0.5 - hit.y / (2.0 * pc.size.y)), 0);
}

fn cylinder(e: vec2<f32>) -> vec4<f32> {
    if outside(e) {
        return vec4<f32>(0.0);
    }
    let r = ray(e);
    let t = exit_distance(pc.param.xyz, r, pc.size.x, true);
    if t <= 0.0 {
        return vec4<f32>(0.0);
    }
    let p = pc.param.xyz + t * r;
    let angle = atan2(p.x, -p.z);
    let height = pc.size.x * pc.size.y / pc.size.z;
    return sample_at(vec2<f32>(angle / pc.size.y + 0.5, 0.5 - p.y / height), 0);
}

// Both equirect kinds: by angles (3) and by scale and bias (4).
fn equirect(e: vec2<f32>) -> vec4<f32> {
    if outside(e) {
        return vec4<f32>(0.0);
    }
    let r = ray(e);
    let t = exit_distance(pc.param.xyz, r, pc.size.x, false);
    if t <= 0.0 {
        return vec4<f32>(0.0);
    }
    let p = normalize(pc.param.xyz + t * r);
    let lon = atan2(p.x, -p.z);
    let lat = asin(clamp(p.y, -1.0, 1.0));
    if KIND == 3u {
        return sample_at(vec2<f32>(lon / pc.size.y + 0.5, (pc.size.z - lat) / (pc.size.z - pc.size.w)), 0);
    }
    let whole = vec2<f32>(lon / 6.28318530717959 + 0.5, 0.5 - lat / 3.14159265358979);
    return sample_at(whole * pc.size.yz + vec2<f32>(pc.size.w, pc.param.w), 0);
}

fn cube(e: vec2<f32>) -> vec4<f32> {
    if outside(e) {
        return vec4<f32>(0.0);
    }
    let r = ray(e);
    // The cube face the direction points at, and where on it (Vulkan's cube map
    // convention: +X, -X, +Y, -Y, +Z, -Z).
    let a = abs(r);
    var face = 0;
    var sc = 0.0;
    var tc = 0.0;
    var ma = 0.0;
    if a.x >= a.y && a.x >= a.z {
        ma = a.x;
        tc = -r.y;
        if r.x > 0.0 { face = 0; sc = -r.z; } else { face = 1; sc = r.z; }
    } else if a.y >= a.z {
        ma = a.y;
        sc = r.x;
        if r.y > 0.0 { face = 2; tc = r.z; } else { face = 3; tc = -r.z; }
    } else {
        ma = a.z;
        tc = -r.y;
        if r.z > 0.0 { face = 4; sc = r.x; } else { face = 5; sc = -r.x; }
    }
    return sample_at(vec2<f32>(0.5 * (sc / ma + 1.0), 0.5 * (tc / ma + 1.0)), face);
}

// Red from the red channel's sample, green from green's, blue from blue's.
struct FsOut {
    @location(0) @blend_src(0) color: vec4<f32>,
    @location(0) @blend_src(1) alpha: vec4<f32>,
};

// Where one panel pixel looks: each channel's eye-image position, and the green
// channel's lens-centred offset (tested against the valid radius).
struct Lens {
    uv_r: vec2<f32>,
    uv_g: vec2<f32>,
    uv_b: vec2<f32>,
    p: vec2<f32>,
};

// The layer's premultiplied colour for one pixel, per channel, and each channel's alpha.
struct Mix {
    color: vec3<f32>,
    alpha: vec3<f32>,
};

fn mix_of(r: vec4<f32>, g: vec4<f32>, b: vec4<f32>) -> Mix {
    return Mix(vec3<f32>(r.r, g.g, b.b), vec3<f32>(r.a, g.a, b.a));
}

// Which kind of layer this build of the shader draws (render::kind's numbers, and 6: a
// projection layer that uses its source alpha). The build script makes one SPIR-V module
// per kind with the constant set: a software rasteriser runs every branch of a shader
// whose branches depend on data, so each module keeps only its own kind's code.
override KIND: u32 = 0u;
override PROJECTION: bool = KIND == 0u || KIND == 6u;
override SOURCE_ALPHA: bool = KIND == 6u;

// Where the lens sends one channel of panel position `base` (the lens-centred position
// before the channel's own centre is taken off).
fn channel(l: EyeLens, c: u32, base: vec2<f32>) -> vec2<f32> {
    let centre = l.centre[c].xy;
    let k = l.k[c];
    let p = base - centre;
    let r2 = dot(p, p);
    let d = 1.0 / (1.0 + r2 * (k.x + r2 * (k.y + r2 * k.z))) + k.w;
    return vec2<f32>(0.5) + (p * d + centre) * l.misc.xy;
}

// Where panel position `e` (0..1 across the eye's half) looks through the eye's lens.
fn lens_at(e: vec2<f32>) -> Lens {
    let l = lens;
    if l.centre[0].z != 0.0 {
        // No lens model: every channel looks where the pixel is.
        return Lens(e, e, e, vec2<f32>(0.0));
    }
    let base = vec2<f32>(2.0 * e.x - 1.0, (2.0 * e.y - 1.0) * l.misc.z);
    return Lens(channel(l, 0u, base), channel(l, 1u, base), channel(l, 2u, base), base - l.centre[1].xy);
}

// Outside the lens's valid radius: nothing (colour and alpha 0: the panel stays black).
fn beyond_lens(l: Lens) -> bool {
    return dot(l.p, l.p) > lens.misc.w;
}

// This build's layer at one pixel (inside the lens's valid radius); `h`: the projection
// map (projection layers).
fn layer_at(l: Lens, h: Homography) -> Mix {
    switch KIND {
        case 0u, 6u: {
            let r = projection(h, l.uv_r, 0u);
            let g = projection(h, l.uv_g, 1u);
            let b = projection(h, l.uv_b, 2u);
            return Mix(vec3<f32>(r.x, g.x, b.x), vec3<f32>(r.y, g.y, b.y));
        }
        case 1u: {
            return mix_of(quad(l.uv_r), quad(l.uv_g), quad(l.uv_b));
        }
        case 2u: {
            return mix_of(cylinder(l.uv_r), cylinder(l.uv_g), cylinder(l.uv_b));
        }
        case 3u, 4u: {
            return mix_of(equirect(l.uv_r), equirect(l.uv_g), equirect(l.uv_b));
        }
        default: {
            return mix_of(cube(l.uv_r), cube(l.uv_g), cube(l.uv_b));
        }
    }
}

@fragment
fn fs_main(in: VsOut) -> FsOut {
    let l = lens_at(in.e);
    if beyond_lens(l) {
        return FsOut(vec4<f32>(0.0), vec4<f32>(0.0));
    }
    let m = layer_at(l, Homography(in.h0, in.h1, in.h2, in.size));
    return FsOut(vec4<f32>(m.color, 0.0), vec4<f32>(m.alpha, 0.0));
}

// The compute path's resources (set 1).
// The panel through an RGBA8 unorm view of its BGRA sRGB image: written once per pixel,
// by the eye's last layer, encoded here.
@group(1) @binding(0) var panel: texture_storage_2d<rgba8unorm, write>;
// The linear colour composed so far, per panel pixel (two half-float pairs: r g, b -).
@group(1) @binding(1) var<storage, read_write> accum: array<vec2<u32>>;

fn srgb(c: f32) -> f32 {
    let x = clamp(c, 0.0, 1.0);
    if x <= 0.0031308 {
        return 12.92 * x;
    }
    return 1.055 * pow(x, 1.0 / 2.4) - 0.055;
}

@compute @workgroup_size(8, 8)
fn cs_main(@builtin(global_invocation_id) id: vec3<u32>) {
    let size = vec2<u32>(pc.eye.z & 0xffffu, pc.eye.z >> 16u);
    if id.x >= size.x || id.y >= size.y {
        return;
    }
    let px = vec2<u32>(pc.eye.y & 0xffffu, pc.eye.y >> 16u) + id.xy;
    let dims = textureDimensions(panel);
    let half = dims.x / 2u;
    let mode = pc.eye.w & 0xffu;
    let eye = (pc.eye.w >> 8u) & 1u;
    let at = px.y * dims.x + px.x;
    var c = vec3<f32>(0.0);
    if (mode & 1u) == 0u {
        let a = accum[at];
        c = vec3<f32>(unpack2x16float(a.x), unpack2x16float(a.y).x);
    }
    let e = (vec2<f32>(f32(px.x - eye * half), f32(px.y)) + 0.5) / vec2<f32>(f32(half), f32(dims.y));
    let l = lens_at(e);
    if !beyond_lens(l) {
        var h: Homography;
        if PROJECTION {
            h = projection_map();
        }
        let m = layer_at(l, h);
        c = m.color + c * (vec3<f32>(1.0) - m.alpha);
    }
    if (mode & 2u) != 0u {
        // The image is BGRA: the view's first channel is blue.
        textureStore(panel, px, vec4<f32>(srgb(c.b), srgb(c.g), srgb(c.r), 1.0));
    } else {
        accum[at] = vec2<u32>(pack2x16float(c.rg), pack2x16float(vec2<f32>(c.b, 0.0)));
    }
}
