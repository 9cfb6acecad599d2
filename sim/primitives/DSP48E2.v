// Simulation model of the AMD UltraScale(+) DSP48E2 for Verilator, as inrarch instantiates it
// (cores/dsp.py): P = A[26:0] * B, signed, through the A2/B2 (AREG/BREG = 1), M and P registers
// that its parameters select. Each register clears on its RST at the clock edge and otherwise loads
// while its CE is high. The pre-adder, the ALU's other operations, the cascades and the pattern
// detector are not modelled: inrarch uses OPMODE = 9'b000000101 (P = M) only. yosys has only a
// blackbox for the primitive; Vivado places the real one.
module DSP48E2 #(
    parameter integer AREG = 1, parameter integer ACASCREG = 1, parameter integer BREG = 1,
    parameter integer BCASCREG = 1, parameter integer MREG = 1, parameter integer PREG = 1,
    parameter integer CREG = 1, parameter integer DREG = 1, parameter integer ADREG = 1,
    parameter integer INMODEREG = 1, parameter integer OPMODEREG = 1, parameter integer ALUMODEREG = 1,
    parameter integer CARRYINREG = 1, parameter integer CARRYINSELREG = 1,
    parameter A_INPUT = "DIRECT", parameter B_INPUT = "DIRECT", parameter AMULTSEL = "A",
    parameter BMULTSEL = "B", parameter USE_MULT = "MULTIPLY", parameter USE_SIMD = "ONE48"
) (
    input [29:0] A, input [17:0] B, input [47:0] C, input [26:0] D,
    input [8:0] OPMODE, input [4:0] INMODE, input [3:0] ALUMODE, input [2:0] CARRYINSEL, input CARRYIN,
    input CLK, input CEA1, CEA2, CEB1, CEB2, CEM, CEP, CEC, CED, CEAD, CECTRL, CEINMODE, CEALUMODE, CECARRYIN,
    input RSTA, RSTB, RSTM, RSTP, RSTC, RSTD, RSTCTRL, RSTINMODE, RSTALUMODE, RSTALLCARRYIN,
    output [47:0] P
);
    reg [26:0] a_reg = 27'd0;
    reg [17:0] b_reg = 18'd0;
    reg [44:0] m_reg = 45'd0;
    reg [47:0] p_reg = 48'd0;
    wire [26:0] a_in = AREG == 0 ? A[26:0] : a_reg;
    wire [17:0] b_in = BREG == 0 ? B : b_reg;
    wire signed [44:0] product = $signed(a_in) * $signed(b_in);
    wire [44:0] m = MREG == 0 ? product : m_reg;
    wire [47:0] sum = {{3{m[44]}}, m};
    always @(posedge CLK) begin
        if (RSTA) a_reg <= 27'd0; else if (CEA2) a_reg <= A[26:0];
        if (RSTB) b_reg <= 18'd0; else if (CEB2) b_reg <= B;
        if (RSTM) m_reg <= 45'd0; else if (CEM) m_reg <= product;
        if (RSTP) p_reg <= 48'd0; else if (CEP) p_reg <= sum;
    end
    assign P = PREG == 0 ? sum : p_reg;
endmodule
