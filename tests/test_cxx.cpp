// Both headers, implementations included, compiled as C++11: the API is
// usable from C++ (extern "C", casts, no C-only constructs in the headers).
#define MODULAR_TENSOR_IMPLEMENTATION
#include "modular_tensor.h"
#define MODULAR_IMPLEMENTATION
#include "modular.h"
#include "tests/test.h"

static mod_status double_it(mod_block_state *bs) {
    const mod_value *x = mod_block_state_get(bs, "x");
    return mod_block_state_set(bs, "y", mod_int(x->i * 2));
}

int main() {
    mt_tensor t = {};
    mt_generator g;
    mt_generator_seed(&g, 0);
    const int64_t shape[2] = {2, 3};
    CHECK(mt_randn(&t, &g, 2, shape) == MT_OK, "randn from C++");
    // torch.manual_seed(0); torch.randn(2, 3)[0][0] = 1.5410 (torch 1.13)
    CHECK_NEAR(mt_f32(&t)[0], 1.5410, 1e-4, "first value matches torch");
    mt_release(&t);

    mod_input_param in[2] = {};
    in[0].name = "x";
    mod_output_param out[2] = {};
    out[0].name = "y";
    mod_block_desc d = {};
    d.inputs = in;
    d.intermediate_outputs = out;
    d.fn = double_it;
    mod_block *b = nullptr;
    mod_state *st = nullptr;
    mod_arg args[2] = {};
    args[0].name = "x";
    args[0].value = mod_int(21);
    CHECK(mod_make_block(&b, &d) == MOD_OK && mod_block_run(b, args, &st) == MOD_OK, "a block runs from C++");
    CHECK(st && mod_state_intermediate(st, "y")->i == 42, "y = 2x");
    mod_state_free(st);
    mod_block_free(b);
    return test_finish();
}
