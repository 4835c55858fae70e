// Eye buffer -> panel through the distortion mesh: red, green and blue sample the eye
// buffer at their own lens-corrected positions. Black outside the lens model's valid
// radius (tested per fragment on the green channel's lens-centred offset, which is
// linear in panel position) and outside the eye buffer.

struct Distort {
    cutoff: vec4<f32>, // .x: r² cutoff of this eye
};

var<push_constant> pc: Distort;
@group(0) @binding(0) var eye: texture_2d<f32>;
@group(0) @binding(1) var samp: sampler;

struct VsIn {
    @location(0) pos: vec2<f32>,
    @location(1) uv_r: vec2<f32>,
    @location(2) uv_g: vec2<f32>,
    @location(3) uv_b: vec2<f32>,
    @location(4) p: vec2<f32>,
};

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv_r: vec2<f32>,
    @location(1) uv_g: vec2<f32>,
    @location(2) uv_b: vec2<f32>,
    @location(3) p: vec2<f32>,
};

@vertex
fn vs_main(v: VsIn) -> VsOut {
    var o: VsOut;
    o.pos = vec4<f32>(v.pos, 0.0, 1.0);
    o.uv_r = v.uv_r;
    o.uv_g = v.uv_g;
    o.uv_b = v.uv_b;
    o.p = v.p;
    return o;
}

fn channel(uv: vec2<f32>, k: i32) -> f32 {
    if uv.x < 0.0 || uv.y < 0.0 || uv.x > 1.0 || uv.y > 1.0 {
        return 0.0;
    }
    return textureSampleLevel(eye, samp, uv, 0.0)[k];
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    if dot(in.p, in.p) > pc.cutoff.x {
        return vec4<f32>(0.0, 0.0, 0.0, 1.0);
    }
    return vec4<f32>(channel(in.uv_r, 0), channel(in.uv_g, 1), channel(in.uv_b, 2), 1.0);
}
